package ckptbeam.io.torch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import org.junit.jupiter.api.Test;

class PickleAuditTest {
  private static byte[] goldenPickle() throws Exception {
    try (InputStream in = PickleAuditTest.class.getResourceAsStream("/golden-appendix-a.pt");
        ZipInputStream zip = new ZipInputStream(in)) {
      for (ZipEntry e = zip.getNextEntry(); e != null; e = zip.getNextEntry()) {
        if (e.getName().endsWith("data.pkl")) {
          return zip.readAllBytes();
        }
      }
    }
    throw new AssertionError("no data.pkl");
  }

  @Test
  void theGoldenFilePasses() throws Exception {
    PickleAudit.Report r = PickleAudit.audit(goldenPickle());
    assertTrue(r.ok(), r.toString());
    assertEquals(2, r.protocol);
    assertTrue(r.globals.contains("torch._utils._rebuild_tensor_v2"), r.globals::toString);
    assertTrue(r.globals.contains("torch.BFloat16Storage"), r.globals::toString);
  }

  @Test
  void aCheckpointDictWithFloatsAndFp8Passes() {
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("checkpoint_version", 3.0);
    root.put("iteration", 1);
    PickleWriter w = new PickleWriter().begin();
    w.value(root);
    PickleAudit.Report r = PickleAudit.audit(w.end());
    assertTrue(r.ok(), r.toString());
    assertTrue(r.opcodes.contains("BINFLOAT"), r.opcodes::toString);
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.ISO_8859_1);
  }

  @Test
  void flagsWhatTheWeightsOnlyLoaderRejects() {
    PickleAudit.Report dd = PickleAudit.audit(bytes("\u0080\u0002ccollections\ndefaultdict\n)R."));
    assertFalse(dd.ok());
    assertTrue(dd.violations.get(0).contains("collections.defaultdict"), dd.toString());
    PickleAudit.Report ns = PickleAudit.audit(bytes("\u0080\u0002cargparse\nNamespace\n)\u0081."));
    assertTrue(ns.violations.get(0).contains("argparse.Namespace"), ns.toString());
    PickleAudit.Report frame = PickleAudit.audit(bytes("\u0080\u0004\u0095\u0001\u0000\u0000\u0000\u0000\u0000\u0000\u0000N."));
    assertEquals(2, frame.violations.size(), frame.toString()); // protocol 4, then FRAME
    PickleAudit.Report os = PickleAudit.audit(bytes("\u0080\u0002cos\nsystem\n."));
    assertFalse(os.ok());
    assertFalse(PickleAudit.audit(bytes("\u0080\u0002N")).ok()); // no STOP
    assertFalse(PickleAudit.audit(bytes("\u0080\u0002X\u00ff\u0000\u0000\u0000ab.")).ok()); // truncated string
  }
}
