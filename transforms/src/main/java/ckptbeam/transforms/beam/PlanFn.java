package ckptbeam.transforms.beam;

import static ckptbeam.transforms.beam.CheckpointConversion.EVENTS;
import static ckptbeam.transforms.beam.CheckpointConversion.SOURCES;
import static ckptbeam.transforms.beam.CheckpointConversion.message;

import ckptbeam.transforms.CheckedConversion;
import ckptbeam.transforms.ConversionPlanner;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.SourceFile;
import java.io.IOException;
import java.util.List;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.KV;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Plans one request: checks it against its input's small files (config, index, tracker; no header is read here) and
 * hands out one {@link SourceWork} per input file to read, to be spread over the workers.
 */
final class PlanFn extends DoFn<ConversionRequest, SourceWork> {
  private static final Logger LOG = LoggerFactory.getLogger(CheckpointConversion.class);

  @ProcessElement
  public void process(@Element ConversionRequest r, MultiOutputReceiver out) {
    long start = System.currentTimeMillis();
    String key = r.saveDir();
    try {
      CheckedConversion checked = ConversionPlanner.check(r);
      if (checked.alreadyConverted()) {
        out.get(EVENTS).output(KV.of(key, CommitEvent.alreadyConverted(r, start)));
        return;
      }
      checked.checkSaveDir(); // read-only: a refused save dir fails before any file is read
      List<SourceFile> files = checked.sources.files();
      if (files.isEmpty()) {
        throw new IOException(r.loadDir() + ": the conversion has no input file to read");
      }
      for (SourceFile f : files) {
        out.get(SOURCES).output(new SourceWork(key, r, checked.fingerprint, files.size(), f, checked.notes, start,
            null, null));
      }
    } catch (Exception e) {
      LOG.warn("{}: planning failed: {}", r, message(e));
      LOG.debug("planning failed", e);
      out.get(EVENTS).output(KV.of(key, CommitEvent.planFailed(r, message(e), start)));
    }
  }
}
