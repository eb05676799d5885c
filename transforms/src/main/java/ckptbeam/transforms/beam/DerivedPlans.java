package ckptbeam.transforms.beam;

import ckptbeam.transforms.CheckedConversion;
import ckptbeam.transforms.ConversionPlanner;
import ckptbeam.transforms.ConversionRequest;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.beam.sdk.transforms.DoFn;

/**
 * Plans, source locators and commits derived again on a worker from a request ({@link ConversionPlanner#derive}),
 * by conversion: every input file and target of a conversion needs the same plan, and some plans derive their
 * contents from the whole layout (mcore → HF inverts every rank file), so each DoFn instance derives one once. One
 * cache per instance, as a DoFn instance runs on one thread at a time: plans fill their caches lazily and are not
 * shared between threads. A derived plan whose fingerprint is not the planned one means that the input changed while
 * it was converted.
 */
final class DerivedPlans {
  private final Map<String, CheckedConversion> byConversion = new LinkedHashMap<>(8, 0.75f, true) {
    @Override
    protected boolean removeEldestEntry(Map.Entry<String, CheckedConversion> eldest) {
      return size() > 4;
    }
  };

  CheckedConversion of(ConversionRequest r, String fingerprint) throws IOException {
    // the same conversion into another save dir, or spelled otherwise, has its own commit (folder, provenance)
    String key = fingerprint + "\n" + r.saveDir() + "\n" + r.options();
    CheckedConversion known = byConversion.get(key);
    if (known != null) {
      return known;
    }
    CheckedConversion derived = ConversionPlanner.derive(r);
    if (!derived.fingerprint.equals(fingerprint)) {
      throw new IOException(r.loadDir() + ": the input changed while it was being converted (its config, index or "
          + "tracker is not the one planned with); convert it again");
    }
    byConversion.put(key, derived);
    return derived;
  }
}
