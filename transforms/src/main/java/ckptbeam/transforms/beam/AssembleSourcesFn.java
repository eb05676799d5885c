package ckptbeam.transforms.beam;

import static ckptbeam.transforms.beam.CheckpointConversion.EVENTS;
import static ckptbeam.transforms.beam.CheckpointConversion.TARGETS;
import static ckptbeam.transforms.beam.CheckpointConversion.message;

import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.CheckedConversion;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.InputSources;
import ckptbeam.transforms.LocatedFile;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.coders.VarIntCoder;
import org.apache.beam.sdk.state.BagState;
import org.apache.beam.sdk.state.StateSpec;
import org.apache.beam.sdk.state.StateSpecs;
import org.apache.beam.sdk.state.ValueState;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.KV;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Per conversion: gathers every input file as it is read (in any order); when all are there, makes the checks that
 * need every file (a tensor in two shards, parts of one tensor in different dtypes, FP8 scales), gives each target
 * its located sources, makes the save dir ready, and hands out one {@link TargetWork} per target file plus the
 * plan for the commit step. A file that could not be read fails the conversion, naming the first such file.
 */
final class AssembleSourcesFn extends DoFn<KV<String, SourceWork>, TargetWork> {
  private static final Logger LOG = LoggerFactory.getLogger(CheckpointConversion.class);
  private transient DerivedPlans derived;

  @StateId("located")
  private final StateSpec<BagState<SourceWork>> locatedSpec = StateSpecs.bag(ConversionCoders.SourceWorkCoder.INSTANCE);

  @StateId("count")
  private final StateSpec<ValueState<Integer>> countSpec = StateSpecs.value(VarIntCoder.of());

  @Setup
  public void setUp() {
    derived = new DerivedPlans();
  }

  @ProcessElement
  public void process(@Element KV<String, SourceWork> e, @StateId("located") BagState<SourceWork> located,
      @StateId("count") ValueState<Integer> count, MultiOutputReceiver out) {
    SourceWork w = e.getValue();
    located.add(w);
    Integer seen = count.read();
    int n = seen == null ? 1 : seen + 1;
    if (n < w.files) {
      count.write(n);
      return;
    }
    List<SourceWork> all = new ArrayList<>();
    located.read().forEach(all::add);
    located.clear();
    count.clear();
    all.sort(Comparator.comparing((SourceWork s) -> s.file.path()));
    ConversionRequest r = w.request;
    try {
      for (SourceWork s : all) {
        if (s.error != null) {
          throw new IOException(s.error.contains(s.file.path()) ? s.error : s.file.path() + ": " + s.error);
        }
      }
      CheckedConversion checked = derived.of(r, w.fingerprint);
      List<LocatedFile> files = new ArrayList<>();
      all.forEach(s -> files.add(s.located));
      InputSources.Located sources = checked.sources.assemble(files);
      Map<String, Map<String, TensorLocation>> targets = checked.targets(sources);
      checked.prepareSaveDir();
      List<String> notes = new ArrayList<>(w.notes);
      notes.addAll(sources.notes());
      notes.forEach(note -> LOG.info("{}: note: {}", r.loadDir(), note));
      out.get(EVENTS).output(KV.of(w.conversion, CommitEvent.planned(r, w.fingerprint, targets.size(), notes,
          w.startMillis)));
      for (Map.Entry<String, Map<String, TensorLocation>> t : targets.entrySet()) {
        out.get(TARGETS).output(new TargetWork(w.conversion, r, t.getKey(), t.getValue(), w.fingerprint));
      }
    } catch (Exception x) {
      LOG.warn("{}: planning failed: {}", r, message(x));
      LOG.debug("planning failed", x);
      out.get(EVENTS).output(KV.of(w.conversion, CommitEvent.planFailed(r, message(x), w.startMillis)));
    }
  }
}
