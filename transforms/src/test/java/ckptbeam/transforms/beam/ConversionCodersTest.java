package ckptbeam.transforms.beam;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ckptbeam.io.compute.Fp8Dequant;
import ckptbeam.io.compute.LoraMerge;
import ckptbeam.io.compute.Nf4;
import ckptbeam.io.compute.Nf4Dequant;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.McoreKeyNames;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.CoderException;
import org.apache.beam.sdk.coders.CoderRegistry;
import org.apache.beam.sdk.testing.CoderProperties;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.junit.jupiter.api.Test;

/** The explicit coders: every field survives, equal values encode to equal bytes, and they are Beam's defaults. */
class ConversionCodersTest {
  private static LayoutOptions everyField() {
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.tp(2);
    o.pp(4);
    o.ep(8);
    o.numLayerList(16, 15, 15, 15);
    o.noopLayers(new TreeSet<>(List.of(61, 3)));
    o.numLayers(61);
    o.firstKDense(3);
    o.mtpLayers(1);
    o.groupedGemm(true);
    o.tpExtendEp(true);
    o.mlaMmSplit(true);
    o.keyNames(McoreKeyNames.Scheme.V2025_03);
    o.nf4(Nf4.Format.BITSANDBYTES);
    return o.build();
  }

  private static List<ConversionRequest> requests() {
    LayoutOptions.Builder vpp = LayoutOptions.builder();
    vpp.layersPerVirtualStage(2);
    vpp.dualpipe(false);
    ConversionRequest.Lora lora = new ConversionRequest.Lora(16, 32.5, "/lora");
    return List.of(
        ConversionRequest.hf2mcore("/in", "/out", everyField())
            .withOptions(Map.of("target-tensor-parallel-size", "2", "num-nextn-predict-layers", "1", "path", "é ☃")),
        ConversionRequest.mcore2hf("gs://b/in", "gs://b/out", vpp.build()).withLora(lora).withModelConfig("/cfg.json")
            .withHfConfigDir("gs://b/hf")
            .withExistingOutput(ConversionRequest.ExistingOutput.RESUME),
        ConversionRequest.loraExport("/in", "/out", vpp.build(), new ConversionRequest.Lora(4, 8, null),
            List.of("linear_qkv", "linear_proj")),
        ConversionRequest.mcore2mcore("/in", "/out", vpp.build(), everyField()),
        ConversionRequest.fp8ToBf16("/fp8", "/bf16").withExistingOutput(ConversionRequest.ExistingOutput.OVERWRITE));
  }

  @Test
  void requestsRoundTripWithEveryField() throws Exception {
    Coder<ConversionRequest> coder = ConversionCoders.RequestCoder.INSTANCE;
    for (ConversionRequest r : requests()) {
      ConversionRequest back = CoderUtils.clone(coder, r);
      assertEquals(r, back);
      assertEquals(r.describe(), back.describe());
      assertEquals(r.options(), back.options());
      assertEquals(r.existingOutput(), back.existingOutput());
      CoderProperties.coderDecodeEncodeEqual(coder, r);
      CoderProperties.coderDeterministic(coder, r, CoderUtils.clone(coder, r));
    }
    coder.verifyDeterministic();
  }

  @Test
  void writtenFilesAndResultsRoundTrip() throws Exception {
    WrittenFile f = new WrittenFile("iter_0000001/mp_rank_00/model_optim_rng.pt", 1234, 1000, "ab".repeat(32),
        List.of(new WrittenFile.Tensor("model/embedding.word_embeddings.weight", "BF16", new long[] {128, 64},
            List.of("model.embed_tokens.weight"))), false);
    CoderProperties.coderDecodeEncodeEqual(ConversionCoders.WrittenFileCoder.INSTANCE, f);
    CoderProperties.coderDecodeEncodeEqual(ConversionCoders.WrittenFileCoder.INSTANCE, f.reused());

    ConversionRequest r = requests().get(0);
    ConversionResult converted = ConversionResult.converted(r, List.of(f), List.of("a note"), 5);
    ConversionResult failed = ConversionResult.failed(r, "x".repeat(70_000), List.of(), 7);
    for (ConversionResult c : List.of(converted, failed)) {
      ConversionResult back = CoderUtils.clone(ConversionResult.coder(), c);
      assertEquals(c.request, back.request);
      assertEquals(c.state, back.state);
      assertEquals(c.message, back.message);
      assertEquals(c.files, back.files);
      assertEquals(c.notes, back.notes);
      assertEquals(c.startMillis, back.startMillis);
      assertEquals(c.endMillis, back.endMillis);
      CoderProperties.coderDeterministic(ConversionResult.coder(), c, back);
    }
  }

  @Test
  void targetsWithComputedSourcesAndCommitEventsRoundTrip() throws Exception {
    TensorLocation w = new TensorLocation("w", "/in/a.safetensors", DType.F8_E4M3, Shape.of(256, 128), 8);
    TensorLocation scale = new TensorLocation("w_scale_inv", "gs://b/in/b.safetensors", DType.F32, Shape.of(2, 1),
        99);
    TensorLocation fp8 = new Fp8Dequant(w, scale, 128, 128).asBf16();
    TensorLocation packed = new TensorLocation("q", "/r.pt", DType.U8, Shape.of(64, 1), 0);
    TensorLocation absmax = new TensorLocation("q.absmax", "/r.pt", DType.U8, Shape.of(2), 64);
    TensorLocation nested = new TensorLocation("q.nested", "/r.pt", DType.F32, Shape.of(1), 66);
    TensorLocation nf4 = new Nf4Dequant(Nf4.Format.BITSANDBYTES, packed, absmax, nested, 0.25f)
        .as("q", DType.BF16, Shape.of(16, 8));
    TensorLocation base = new TensorLocation("m", "/r.pt", DType.BF16, Shape.of(4, 6), 128);
    TensorLocation lora = base.computedBy(new LoraMerge(new TensorLocation("B", "/r.pt", DType.BF16, Shape.of(4, 2),
        0), new TensorLocation("A", "/r.pt", DType.BF16, Shape.of(2, 6), 16), 1, 4, 6, 2, 0.5f));
    java.util.LinkedHashMap<String, TensorLocation> sources = new java.util.LinkedHashMap<>();
    sources.put("z-first", fp8);
    sources.put("a-second", nf4);
    sources.put("m", lora);
    sources.put("plain", base);
    TargetWork work = new TargetWork("/out", requests().get(1), "model-00001-of-000005.safetensors", sources, "fp");
    TargetWork back = CoderUtils.clone(ConversionCoders.TargetWorkCoder.INSTANCE, work);
    assertEquals(List.copyOf(sources.keySet()), List.copyOf(back.sources.keySet()), "the plan's order");
    assertEquals(sources, back.sources, "locations and what computes them (equals covers every field)");
    assertEquals(work.request, back.request);
    assertEquals(work.target + work.fingerprint + work.conversion, back.target + back.fingerprint + back.conversion);
    assertArrayEquals(CoderUtils.encodeToByteArray(ConversionCoders.TargetWorkCoder.INSTANCE, work),
        CoderUtils.encodeToByteArray(ConversionCoders.TargetWorkCoder.INSTANCE, back), "deterministic");

    // an input file to read, then the same file read (its tensors in the file's order), or failed
    SourceWork toRead = new SourceWork("/out", requests().get(0), "fp", 163,
        new ckptbeam.transforms.SourceFile("/in/model-00001-of-000163.safetensors", List.of("w", "x")),
        List.of("a note"), 42, null, null);
    for (SourceWork sw : List.of(toRead, toRead.located(new ckptbeam.transforms.LocatedFile(toRead.file.path(), sources,
        List.of("unindexed"))), toRead.failed("cut short"))) {
      SourceWork c = CoderUtils.clone(ConversionCoders.SourceWorkCoder.INSTANCE, sw);
      assertEquals(sw.request, c.request);
      assertEquals(List.of(sw.conversion, sw.fingerprint, sw.files, sw.file, sw.notes, sw.startMillis, String.valueOf(sw.error)),
          List.of(c.conversion, c.fingerprint, c.files, c.file, c.notes, c.startMillis, String.valueOf(c.error)));
      assertEquals(sw.located, c.located, "every location and what computes it, in the file's order");
      assertArrayEquals(CoderUtils.encodeToByteArray(ConversionCoders.SourceWorkCoder.INSTANCE, sw),
          CoderUtils.encodeToByteArray(ConversionCoders.SourceWorkCoder.INSTANCE, c), "deterministic");
    }

    WrittenFile f = new WrittenFile("x", 1, 1, "00", List.of(), true);
    for (CommitEvent e : List.of(CommitEvent.planned(requests().get(3), "fp", 12, List.of("n"), 3),
        CommitEvent.planFailed(requests().get(0), "why", 4), CommitEvent.alreadyConverted(requests().get(4), 5),
        CommitEvent.written(f), CommitEvent.writeFailed("t", "broken"))) {
      CommitEvent c = CoderUtils.clone(ConversionCoders.CommitEventCoder.INSTANCE, e);
      assertEquals(List.of(e.kind, String.valueOf(e.request), String.valueOf(e.fingerprint), e.expectedFiles,
          e.notes, e.startMillis, String.valueOf(e.file), String.valueOf(e.target), String.valueOf(e.message)),
          List.of(c.kind, String.valueOf(c.request), String.valueOf(c.fingerprint), c.expectedFiles, c.notes,
              c.startMillis, String.valueOf(c.file), String.valueOf(c.target), String.valueOf(c.message)));
      assertEquals(e.request, c.request);
      assertEquals(e.file, c.file);
      assertArrayEquals(CoderUtils.encodeToByteArray(ConversionCoders.CommitEventCoder.INSTANCE, e),
          CoderUtils.encodeToByteArray(ConversionCoders.CommitEventCoder.INSTANCE, c), "deterministic");
    }
  }

  @Test
  void theyAreBeamsDefaultsForTheirTypes() throws Exception {
    CoderRegistry registry = CoderRegistry.createDefault();
    assertSame(ConversionCoders.RequestCoder.INSTANCE, registry.getCoder(TypeDescriptor.of(ConversionRequest.class)));
    assertSame(ConversionCoders.WrittenFileCoder.INSTANCE, registry.getCoder(TypeDescriptor.of(WrittenFile.class)));
    assertSame(ConversionCoders.ResultCoder.INSTANCE, registry.getCoder(TypeDescriptor.of(ConversionResult.class)));
  }

  @Test
  void anotherFormatIsRefused() throws Exception {
    byte[] bytes = CoderUtils.encodeToByteArray(ConversionCoders.RequestCoder.INSTANCE, requests().get(4));
    bytes[3] = 9; // the format number's last byte
    CoderException e = assertThrows(CoderException.class,
        () -> CoderUtils.decodeFromByteArray(ConversionCoders.RequestCoder.INSTANCE, bytes));
    assertEquals("encoded with format 9 of ckptbeam's coders; this release reads format " + ConversionCoders.FORMAT, e.getMessage());
  }
}
