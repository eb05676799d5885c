package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The DeepSeek-V3 family beyond V3: V3.2 (a DSA indexer in every layer, checked by the independent torch checker),
 * V3.1 (V3's tensors, ue8m0 FP8 scales), Kimi-K2 (64 heads, 384 experts, one dense layer, no MTP) and DeepSeek-V4
 * (bf16: native names, compressors, indexers, hash routing, mHC, f32 and int32 tensors), through hf2mcore, mcore2hf
 * and mcore2mcore; V3.2 and V4 checked by the independent torch checker.
 */
class ModelFamilyTest {
  @TempDir static Path shared;
  @TempDir Path work;
  static Path v32;
  static Path kimi;
  static Path v4;

  @BeforeAll
  static void models() throws Exception {
    v32 = Checkpoints.tinyModel(shared.resolve("v32"), "--v32", "--layers", "4", "--first-k-dense", "1");
    kimi = Checkpoints.tinyModel(shared.resolve("kimi"), "--heads", "64", "--experts", "384", "--first-k-dense", "1",
        "--layers", "2", "--mtp-layers", "0", "--hidden-size", "32", "--q-lora-rank", "16", "--kv-lora-rank", "8",
        "--qk-nope-head-dim", "4", "--qk-rope-head-dim", "4", "--v-head-dim", "4", "--moe-intermediate-size", "8",
        "--intermediate-size", "64", "--vocab-size", "256", "--shards", "2");
    v4 = Checkpoints.tinyModel(shared.resolve("v4"), "--v4", "--layers", "6", "--hash-layers", "2");
    Path config = kimi.resolve("config.json");
    Files.writeString(config, Files.readString(config).replace("\"deepseek_v3\"", "\"kimi_k2\""));
  }

  private static List<String> split(String s) {
    return s.isBlank() ? List.of() : List.of(s.trim().split("\\s+"));
  }

  private Path run(String command, Path in, String out, String flags) {
    List<String> args = new ArrayList<>(List.of(command, "--load-dir", in.toString(), "--save-dir",
        work.resolve(out).toString(), "--quiet"));
    args.addAll(split(flags));
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, args + "\n" + r);
    return work.resolve(out);
  }

  private static String reverse(String flags) {
    return flags.replace("--target-", "--source-");
  }

  @ParameterizedTest(name = "V3.2 {0}")
  @CsvSource(delimiter = '|', value = {
      "tp2 pp2 grouped | --target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 --moe-grouped-gemm "
          + "| --tp 2 --pp 2 --grouped-gemm",
      "ep4 per-expert, mla-mm-split | --target-expert-parallel-size 4 --mla-mm-split | --ep 4 --mla-mm-split",
      "tp-extend-ep | --target-tensor-parallel-size 2 --target-expert-parallel-size 2 --moe-grouped-gemm "
          + "--moe-tp-extend-ep | --tp 2 --ep 2 --grouped-gemm --tp-extend-ep",
      "vpp, 2025.03 names | --target-pipeline-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 "
          + "--mcore-key-names 2025.03 | --pp 2 --vpp 1 --key-names 2025.03",
      "dualpipev | --target-pipeline-parallel-size 2 --schedules-method dualpipev | --pp 2 --dualpipe",
      "noop layers | --target-pipeline-parallel-size 2 --num-layers 6 --noop-layers 1,4 | --pp 2 --num-layers 6 "
          + "--noop 1,4"})
  void v32EveryLayoutFamilyMatchesTheSpecAndComesBackBitExact(String name, String flags, String checker)
      throws Exception {
    checkedRoundTrip(v32, flags, checker);
  }

  /**
   * hf2mcore of {@code model} with {@code flags} and one MTP layer, checked by the independent torch checker (its
   * {@code checker} flags), then mcore2hf back, bit-exact; returns the rank files' folder.
   */
  private Path checkedRoundTrip(Path model, String flags, String checker) throws Exception {
    String mtp = " --mtp-num-layers 1";
    Path mcore = run("hf2mcore", model, "mcore", flags + mtp);
    List<String> check = new ArrayList<>(split(checker));
    check.addAll(List.of("--mtp", "1"));
    String report = Torch.checkMcore(model, mcore, check.toArray(new String[0]));
    assertTrue(report.startsWith("OK "), report);
    Path back = run("mcore2hf", mcore, "back", reverse(flags) + mtp);
    assertBitExact(model, back);
    return mcore;
  }

  @Test
  void v32IndexerKeepsItsDtypesAndMcore2mcoreEqualsTheTwoPasses() throws Exception {
    Path mcore = run("hf2mcore", v32, "mcore", "--target-tensor-parallel-size 2 --moe-grouped-gemm --mtp-num-layers 1");
    // k_norm stays float32 in every rank; the MTP layer has its indexer too
    Map<String, String> dtypes = new TreeMap<>();
    for (var f : new ObjectMapper().readTree(
        mcore.resolve("ckptbeam-manifest.json").toFile()).get("files")) {
      for (var t : f.path("tensors")) {
        dtypes.put(f.get("path").asText() + ":" + t.get("key").asText(), t.get("dtype").asText());
      }
    }
    String rank = "iter_0000001/mp_rank_01/model_optim_rng.pt:model/";
    assertEquals("F32", dtypes.get(rank + "decoder.layers.0.self_attention.dsa_indexer.k_norm.bias"), dtypes.keySet()
        .toString());
    assertEquals("BF16", dtypes.get(rank + "mtp.layers.0.transformer_layer.self_attention.dsa_indexer.wk.weight"));
    assertReshardingEqualsTheTwoPasses(mcore);
  }

  /** mcore2mcore of a tp2 grouped checkpoint to pp2 ep4 gives the bytes of mcore2hf then hf2mcore. */
  private void assertReshardingEqualsTheTwoPasses(Path mcore) throws Exception {
    Path direct = run("mcore2mcore", mcore, "direct", "--source-tensor-parallel-size 2 --source-moe-grouped-gemm "
        + "--mtp-num-layers 1 --target-expert-parallel-size 4 --target-pipeline-parallel-size 2");
    Path hf = run("mcore2hf", mcore, "hf", "--source-tensor-parallel-size 2 --moe-grouped-gemm --mtp-num-layers 1");
    Path two = run("hf2mcore", hf, "two", "--target-expert-parallel-size 4 --target-pipeline-parallel-size 2 "
        + "--mtp-num-layers 1");
    assertSameData(two, direct);
  }

  @Test
  void v32LoraMergeLeavesTheIndexerAloneAndEqualsAnIndependentMerge() throws Exception {
    Path mcore = run("hf2mcore", v32, "mcore", "--target-tensor-parallel-size 2 --mtp-num-layers 1");
    Torch.requireTorch();
    Torch.Result made = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/make_lora.py").toString(), "--mcore", mcore.toString(),
        "--out", work.toString(), "--r", "4", "--alpha", "8", "--hidden", "64"));
    assertEquals(0, made.exit, made.output);
    Files.copy(v32.resolve("config.json"), work.resolve("combined/config.json"));
    Files.copy(v32.resolve("config.json"), work.resolve("merged/config.json"));
    String source = "--source-tensor-parallel-size 2 --mtp-num-layers 1";
    Path expected = run("mcore2hf", work.resolve("merged"), "hf-expected", source);
    Path merged = run("mcore2hf", work.resolve("combined"), "hf-merged", source + " --lora-r 4 --lora-alpha 8");
    assertSameData(expected, merged);
    TreeMap<String, byte[]> plain = Checkpoints.dataContents(run("mcore2hf", mcore, "hf-plain", source));
    TreeMap<String, byte[]> withLora = Checkpoints.dataContents(merged);
    long changed = plain.keySet().stream().filter(k -> k.endsWith(".safetensors")
        && !Arrays.equals(plain.get(k), withLora.get(k))).count();
    assertTrue(changed >= 4, "the merge changed " + changed + " files");
  }

  @Test
  void v32Fp8WithUe8m0ScalesEqualsItsBf16Copy() throws Exception {
    Path fp8 = Checkpoints.tinyModel(work.resolve("v32-fp8"), "--v32", "--fp8", "--fp8-block", "16");
    String config = Files.readString(fp8.resolve("config.json"));
    assertTrue(config.contains("\"scale_fmt\" : \"ue8m0\""), config);
    String index = Files.readString(fp8.resolve("model.safetensors.index.json"));
    assertTrue(index.contains("self_attn.indexer.wq_b.weight_scale_inv"), "the indexer's wq_b is FP8 in the release");
    assertFalse(index.contains("indexer.weights_proj.weight_scale_inv"), "weights_proj stays bf16");
    Path bf16 = run("fp8-to-bf16", fp8, "bf16", "");
    String flags = "--target-tensor-parallel-size 2 --target-expert-parallel-size 2 --moe-grouped-gemm "
        + "--mtp-num-layers 1";
    assertSameData(run("hf2mcore", bf16, "from-bf16", flags), run("hf2mcore", fp8, "from-fp8", flags));
  }

  @Test
  void aV3CheckpointWithAV32ConfigAndTheReverseAreRefusedByName() throws Exception {
    Path v3 = Checkpoints.tinyModel(work.resolve("v3"));
    Path v3WithV32Config = copyWithConfig(v3, v32.resolve("config.json"), "a");
    Checkpoints.Run missing = Checkpoints.cli("hf2mcore", "--load-dir", v3WithV32Config.toString(), "--save-dir",
        work.resolve("o1").toString());
    assertEquals(1, missing.exit, missing.toString());
    assertTrue(missing.err.contains("tensor(s) the layout needs are not in the index, e.g. \"model.layers.0.self_attn"
        + ".indexer.wq_b.weight\""), missing.err);
    Path v32WithV3Config = copyWithConfig(v32, v3.resolve("config.json"), "b");
    Checkpoints.Run unexpected = Checkpoints.cli("hf2mcore", "--load-dir", v32WithV3Config.toString(), "--save-dir",
        work.resolve("o2").toString());
    assertEquals(1, unexpected.exit, unexpected.toString());
    assertTrue(unexpected.err.contains("holds DeepSeek-V3.2 DSA indexer tensors (e.g. \"model.layers.0.self_attn"
        + ".indexer."), unexpected.err);
    assertFalse(Files.exists(work.resolve("o1/latest_checkpointed_iteration.txt")));
    assertFalse(Files.exists(work.resolve("o2/latest_checkpointed_iteration.txt")));
  }

  @Test
  void v31Ue8m0ScalesConvertExactly() throws Exception {
    // V3.1: V3's tensors; its FP8 release declares scale_fmt ue8m0 (power-of-two scales, float32 in the file)
    Path v31 = Checkpoints.tinyModel(work.resolve("v31"), "--fp8", "--fp8-block", "16");
    Path config = v31.resolve("config.json");
    Files.writeString(config, Files.readString(config).replace("\"quant_method\"", "\"scale_fmt\" : \"ue8m0\", "
        + "\"quant_method\""));
    Path bf16 = run("fp8-to-bf16", v31, "bf16", "");
    Path back = run("mcore2hf", run("hf2mcore", v31, "mcore", "--target-pipeline-parallel-size 2 --mtp-num-layers 1"),
        "back", "--source-pipeline-parallel-size 2 --mtp-num-layers 1");
    assertBitExact(bf16, back);
  }

  @ParameterizedTest(name = "Kimi-K2 {0}")
  @CsvSource(delimiter = '|', value = {
      "grouped ep8 | --target-expert-parallel-size 8 --moe-grouped-gemm | --ep 8 --grouped-gemm",
      "tp2 per-expert | --target-tensor-parallel-size 2 --target-expert-parallel-size 4 | --tp 2 --ep 4",
      "pp2 tp-extend-ep | --target-pipeline-parallel-size 2 --target-tensor-parallel-size 2 "
          + "--target-expert-parallel-size 2 --moe-grouped-gemm --moe-tp-extend-ep | --pp 2 --tp 2 --ep 2 "
          + "--grouped-gemm --tp-extend-ep",
      "mla-mm-split tp4 | --target-tensor-parallel-size 4 --mla-mm-split | --tp 4 --mla-mm-split"})
  void kimiK2ThroughEveryCommand(String name, String flags, String checker) throws Exception {
    Path mcore = run("hf2mcore", kimi, "mcore", flags);
    String report = Torch.checkMcore(kimi, mcore, split(checker).toArray(new String[0]));
    assertTrue(report.startsWith("OK "), report);
    Path back = run("mcore2hf", mcore, "back", reverse(flags));
    assertBitExact(kimi, back);
    Path direct = run("mcore2mcore", mcore, "direct", sided(flags) + " --target-expert-parallel-size 16");
    Path two = run("hf2mcore", back, "two", "--target-expert-parallel-size 16");
    assertSameData(two, direct);
  }

  /** hf2mcore's flags as the source side of mcore2mcore. */
  private static String sided(String flags) {
    StringBuilder b = new StringBuilder();
    for (String f : split(flags)) {
      b.append(' ').append(f.startsWith("--target-") ? "--source-" + f.substring(9) : f.startsWith("--")
          ? "--source-" + f.substring(2) : f);
    }
    return b.toString();
  }

  private Path copyWithConfig(Path from, Path config, String name) throws Exception {
    Path to = Checkpoints.copyTree(from, work.resolve(name));
    Files.copy(config, to.resolve("config.json"), StandardCopyOption.REPLACE_EXISTING);
    return to;
  }

  @ParameterizedTest(name = "V4 {0}")
  @CsvSource(delimiter = '|', value = {
      "shipped form: pp ep grouped, noop last | --target-pipeline-parallel-size 2 --target-expert-parallel-size 4 "
          + "--moe-grouped-gemm --noop-layers 6,7 --num-layers 8 --model-type-hf deepseek4 "
          + "--expert-tensor-parallel-size 1 | --pp 2 --ep 4 --grouped-gemm --noop 6,7 --num-layers 8",
      "tp2 ep2 per-expert | --target-tensor-parallel-size 2 --target-expert-parallel-size 2 | --tp 2 --ep 2",
      "tp2 vpp noop grouped | --target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 "
          + "--num-layers-per-virtual-pipeline-stage 2 --num-layers 8 --noop-layers 3,7 --moe-grouped-gemm "
          + "| --tp 2 --pp 2 --vpp 2 --num-layers 8 --noop 3,7 --grouped-gemm",
      "num-layer-list | --target-pipeline-parallel-size 3 --num-layer-list 1,2,3 | --pp 3 --num-layer-list 1,2,3",
      "tp2 ep2 per-expert at expert-TP 2 | --target-tensor-parallel-size 2 --target-expert-parallel-size 2 "
          + "--expert-tensor-parallel-size 2 | --tp 2 --ep 2 --etp 2"})
  void v4EveryLayoutFamilyMatchesTheSpecAndComesBackBitExact(String name, String flags, String checker)
      throws Exception {
    Path mcore = checkedRoundTrip(v4, flags, checker);
    // f32 and integer tensors pass through in their dtypes
    Map<String, String> dtypes = new TreeMap<>();
    for (var f : new ObjectMapper().readTree(mcore.resolve("ckptbeam-manifest.json").toFile()).get("files")) {
      for (var t : f.path("tensors")) {
        dtypes.put(t.get("key").asText(), t.get("dtype").asText());
      }
    }
    assertTrue(dtypes.containsValue("I32") && dtypes.containsValue("F32"), dtypes.toString());
  }

  @Test
  void v4Mcore2mcoreEqualsTheTwoPasses() throws Exception {
    assertReshardingEqualsTheTwoPasses(run("hf2mcore", v4, "mcore",
        "--target-tensor-parallel-size 2 --moe-grouped-gemm --mtp-num-layers 1"));
  }

  @Test
  void v4LayoutsTheTrainerCannotUseAndAWrongModelTypeAreRefusedByName() {
    String[][] cases = {
        {"--target-pipeline-parallel-size 2 --schedules-method dualpipev", "--schedules-method"},
        {"--target-tensor-parallel-size 2 --target-expert-parallel-size 2 --moe-grouped-gemm --moe-tp-extend-ep",
            "--moe-tp-extend-ep"},
        {"--expert-tensor-parallel-size 2 --target-tensor-parallel-size 2 --moe-grouped-gemm",
            "--expert-tensor-parallel-size 2 with --moe-grouped-gemm"},
        {"--expert-tensor-parallel-size 3 --target-tensor-parallel-size 2", "--expert-tensor-parallel-size 3 must be 1"},
        {"--model-type-hf deepseek3", "--model-type-hf deepseek3 names DeepSeek-V3"}};
    for (String[] c : cases) {
      List<String> args = new ArrayList<>(List.of("hf2mcore", "--load-dir", v4.toString(), "--save-dir",
          work.resolve("refused").toString(), "--quiet"));
      args.addAll(split(c[0]));
      Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
      assertEquals(2, r.exit, c[0] + "\n" + r);
      assertTrue(r.err.contains(c[1]), r.err);
      assertFalse(Files.exists(work.resolve("refused").resolve("latest_checkpointed_iteration.txt")));
    }
    Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", kimi.toString(), "--save-dir",
        work.resolve("kimi-as-v4").toString(), "--model-type-hf", "deepseek4");
    assertEquals(2, r.exit, r.toString());
    assertTrue(r.err.contains("names DeepSeek-V4 but the checkpoint's config.json is DeepSeek-V3-family"), r.err);
  }

  /** MindSpeed's V4 mcore2hf reads the layout from the rank files' args; so does ours, and checks given flags. */
  @Test
  void v4Mcore2hfTakesTheLayoutFromTheArgsAndRefusesFlagsThatDisagree() throws Exception {
    Path mcore = run("hf2mcore", v4, "mcore", "--target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 "
        + "--num-layers-per-virtual-pipeline-stage 2 --num-layers 8 --noop-layers 3,7 --moe-grouped-gemm "
        + "--target-expert-parallel-size 2 --mtp-num-layers 1");
    Path back = run("mcore2hf", mcore, "back", "");
    assertBitExact(v4, back);
    Checkpoints.Run verified = Checkpoints.cli("verify", "--hf", v4.toString(), "--mcore", mcore.toString());
    assertEquals(0, verified.exit, verified.toString());
    Checkpoints.Run r = Checkpoints.cli("mcore2hf", "--load-dir", mcore.toString(), "--save-dir",
        work.resolve("refused").toString(), "--source-tensor-parallel-size", "4");
    assertEquals(2, r.exit, r.toString());
    assertTrue(r.err.contains("--source-tensor-parallel-size 4 but the checkpoint's args (its rank files) say "
        + "tensor_model_parallel_size 2"), r.err);
    Checkpoints.Run base = Checkpoints.cli("mcore2hf", "--load-dir", mcore.toString(), "--save-dir",
        work.resolve("refused-base").toString(), "--model-type-hf", "deepseek4_base");
    assertTrue(base.exit != 0 && base.err.contains("say deepseek4 (tie_mtp_embeddings_and_lmhead is set)"),
        base.toString());
    // args that ask for more layers than config.json describes (a hostile or foreign file) are refused at once
    Checkpoints.Run huge = mcore2hfOfAnEditedCopy(mcore, "huge", "a.num_layers = 1000000000");
    assertTrue(huge.exit == 2 && huge.err.contains("the checkpoint's args (its rank files) say num_layers 1000000000 "
        + "with 2 noop slot(s), 999999998 HF layers, but config.json"), huge.toString());
    // a layout refused for V4 that the args name (dualpipev, tp-extend-ep) is refused as such
    Checkpoints.Run dual = mcore2hfOfAnEditedCopy(mcore, "dualpipe", "a.dualpipe = True");
    assertTrue(dual.exit == 2 && dual.err.contains("say dualpipe: MindSpeed's dualpipev layout is not supported for "
        + "DeepSeek-V4"), dual.toString());
    Checkpoints.Run extend = mcore2hfOfAnEditedCopy(mcore, "extend", "a.moe_tp_extend_ep = True");
    assertTrue(extend.exit == 2 && extend.err.contains("say moe_tp_extend_ep: not supported for DeepSeek-V4"),
        extend.toString());
    // a hash routing table naming an expert the model does not have is refused, as on the HF side
    Checkpoints.Run wrongExpert = mcore2hfOfAnEditedCopy(mcore, "tid2eid",
        "for m in [v for k, v in d.items() if k.startswith('model')]:",
        "    for k in [k for k in m if k.endswith('mlp.router.tid2eid')]:",
        "        m[k] = m[k].clone(); m[k][5, 1] = 99");
    assertTrue(wrongExpert.exit != 0 && wrongExpert.err.contains("mlp.router.tid2eid\" entry 11 is expert 99, outside "
        + "0.."), wrongExpert.toString());
    assertFalse(Files.exists(work.resolve("refused-tid2eid/model.safetensors.index.json")));
    // a replicated tensor whose copies differ (here a norm on tp rank 1, ep rank 1: a pair the trainer saves) is
    // refused, naming both rank files
    Path drifted = Checkpoints.copyTree(mcore, work.resolve("drifted"));
    Path tp1 = drifted.resolve("iter_0000001/mp_rank_01_000_001/model_optim_rng.pt");
    Torch.Result edited = Torch.run(List.of(Torch.PYTHON, "-c", "import sys, torch; d = torch.load(sys.argv[1], "
        + "weights_only=False); d['model0']['decoder.layers.0.input_layernorm.weight'][0] += 1; torch.save(d, "
        + "sys.argv[1])", tp1.toString()));
    assertEquals(0, edited.exit, edited.output);
    Checkpoints.Run copies = Checkpoints.cli("mcore2hf", "--load-dir", drifted.toString(), "--save-dir",
        work.resolve("refused-drifted").toString());
    Path tp0 = drifted.resolve("iter_0000001/mp_rank_00_000_000/model_optim_rng.pt");
    assertTrue(copies.exit != 0 && copies.err.contains(tp1 + ": model0/decoder.layers.0.input_layernorm.weight differs "
        + "from its copy in " + tp0), copies.toString());
    // a rank file whose args name another layout (a file of another checkpoint) is refused by name
    Path mixed = Checkpoints.copyTree(mcore, work.resolve("mixed"));
    Path stranger = mixed.resolve("iter_0000001/mp_rank_01_001_001/model_optim_rng.pt");
    Torch.Result other = Torch.run(List.of(Torch.PYTHON, "-c", "import sys, torch; d = torch.load(sys.argv[1], "
        + "weights_only=False); d['args'].num_layers = 12; torch.save(d, sys.argv[1])", stranger.toString()));
    assertEquals(0, other.exit, other.output);
    Checkpoints.Run mixedRun = Checkpoints.cli("mcore2hf", "--load-dir", mixed.toString(), "--save-dir",
        work.resolve("refused-mixed").toString());
    assertTrue(mixedRun.exit != 0 && mixedRun.err.contains(stranger + ": its args say num_layers 12, but the layout "
        + "being read"), mixedRun.toString());
    // MindSpeed's V4 --num-layers counts HF layers without the noop slots: 6 here, where the args say 8 slots
    Path same = run("mcore2hf", mcore, "back-6", "--num-layers 6");
    assertSameData(back, same);
    // resharding keeps what the args say: the target gets the MTP layer without --mtp-num-layers
    Path direct = run("mcore2mcore", mcore, "direct", "--target-expert-parallel-size 4");
    Path viaHf = run("hf2mcore", back, "two", "--target-expert-parallel-size 4 --mtp-num-layers 1");
    assertSameData(viaHf, direct);
  }

  /**
   * MindSpeed's V4 mcore2hf script style: a checkpoint without config.json (as the trainer saves it), converted with
   * {@code --hf-cfg-dir} naming the original HF folder: dimensions from its config, its tokenizer and code files
   * copied, never its index (which names the other checkpoint's shards; spec §8 #2).
   */
  @Test
  void v4Mcore2hfWithAnHfConfigDirTakesItsConfigAndTokenizerButNotItsIndex() throws Exception {
    Path mcore = run("hf2mcore", v4, "mcore-nocfg", "--target-pipeline-parallel-size 2 --moe-grouped-gemm "
        + "--mtp-num-layers 1");
    Files.delete(mcore.resolve("config.json"));
    Path template = Files.createDirectories(work.resolve("template/sub"));
    template = template.getParent();
    Files.copy(v4.resolve("config.json"), template.resolve("config.json"));
    Files.writeString(template.resolve("tokenizer.json"), "{\"model\": {}}");
    Files.writeString(template.resolve("chat_template.jinja"), "{{ messages }}");
    Files.writeString(template.resolve("sub/tokenizer.json"), "not copied");
    Files.writeString(template.resolve("model.safetensors.index.json"),
        "{\"metadata\": {}, \"weight_map\": {\"embed.weight\": \"elsewhere.safetensors\"}}");
    // MindSpeed's own hf2mcore writes no config.json either, and its mcore2hf script names none: the model comes from
    // the rank files' args, which hold config.json's scalar and list fields
    Checkpoints.Run fromArgs = Checkpoints.cli("mcore2hf", "--load-dir", mcore.toString(), "--save-dir",
        work.resolve("no-config").toString());
    assertEquals(0, fromArgs.exit, fromArgs.toString());
    assertTrue((fromArgs.out + fromArgs.err).contains("rebuilt from the args of"), fromArgs.toString());
    assertBitExact(v4, work.resolve("no-config"));
    JsonNode original = new ObjectMapper().readTree(v4.resolve("config.json").toFile());
    JsonNode rebuilt = new ObjectMapper().readTree(work.resolve("no-config/config.json").toFile());
    original.fields().forEachRemaining(f -> {
      if (!f.getValue().isObject() && !f.getValue().isNull()) {
        assertEquals(f.getValue(), rebuilt.get(f.getKey()), "config.json field " + f.getKey());
      }
    });
    assertFalse(rebuilt.has("tensor_model_parallel_size"), rebuilt.toString());
    Path back = run("mcore2hf", mcore, "with-cfg-dir", "--hf-cfg-dir " + template);
    assertBitExact(v4, back);
    assertEquals("{\"model\": {}}", Files.readString(back.resolve("tokenizer.json")));
    assertEquals("{{ messages }}", Files.readString(back.resolve("chat_template.jinja")));
    assertFalse(Files.exists(back.resolve("sub")));
    assertArrayEquals(Files.readAllBytes(v4.resolve("config.json")), Files.readAllBytes(back.resolve("config.json")));
    assertFalse(Files.readString(back.resolve("model.safetensors.index.json")).contains("elsewhere"));
    Checkpoints.Run notThere = Checkpoints.cli("mcore2hf", "--load-dir", mcore.toString(), "--save-dir",
        work.resolve("bad-cfg-dir").toString(), "--hf-cfg-dir", work.resolve("nowhere").toString());
    assertTrue(notThere.exit != 0 && notThere.err.contains("--hf-cfg-dir " + work.resolve("nowhere")
        + ": no such directory"), notThere.toString());
    // the save dir may not be the template folder, however either is spelled; nothing is written there
    Checkpoints.Run intoTemplate = Checkpoints.cli("mcore2hf", "--load-dir", mcore.toString(), "--save-dir",
        template + "/", "--hf-cfg-dir", template + "//");
    assertTrue(intoTemplate.exit != 0 && intoTemplate.err.contains("--hf-cfg-dir " + template + " is the save dir"),
        intoTemplate.toString());
    assertFalse(Files.exists(template.resolve("latest_checkpointed_iteration.txt")));
    assertFalse(Files.exists(template.resolve("ckptbeam-manifest.json")));
  }

  /**
   * A checkpoint as MindSpeed's trainer saves it at expert-TP 1 (spec §2.2.1): only the (tp, ep) pairs it uses, here
   * (0, 0) and (1, 1) of tp 2 × ep 2; hf2mcore (as the reference) writes all four. mcore2hf and mcore2mcore read it.
   */
  @Test
  void v4TrainerSavedCheckpointWithOnlyTheUsedRankPairsConverts() throws Exception {
    Path mcore = run("hf2mcore", v4, "pairs", "--target-tensor-parallel-size 2 --target-expert-parallel-size 2 "
        + "--target-pipeline-parallel-size 2 --moe-grouped-gemm --mtp-num-layers 1");
    Path full = run("mcore2hf", mcore, "pairs-full", "");
    int removed = 0;
    for (String unused : List.of("mp_rank_00_000_001", "mp_rank_00_001_001", "mp_rank_01_000_000",
        "mp_rank_01_001_000")) {
      Path dir = mcore.resolve("iter_0000001").resolve(unused);
      Files.delete(dir.resolve("model_optim_rng.pt"));
      Files.delete(dir);
      removed++;
    }
    assertEquals(4, removed);
    // and the args as the trainer's own Namespace has them: no converter's model_type_hf or tie flag, a set for
    // noop_layers, training settings; MindSpeed's script names the type
    editArgs(mcore, "del a.model_type_hf, a.tie_mtp_embeddings_and_lmhead", "a.noop_layers = set()", "a.lr = 1e-4",
        "a.train_iters = 1000");
    Path back = run("mcore2hf", mcore, "pairs-back", "--model-type-hf deepseek4");
    assertBitExact(v4, back);
    assertSameData(full, back);
    Checkpoints.Run verified = Checkpoints.cli("verify", "--hf", v4.toString(), "--mcore", mcore.toString());
    assertEquals(0, verified.exit, verified.toString());
    assertTrue(verified.out.contains("4 rank file(s) (4 more absent: (tp, ep) pairs the trainer does not save"),
        verified.toString());
    Path direct = run("mcore2mcore", mcore, "pairs-direct", "--target-tensor-parallel-size 1 "
        + "--target-pipeline-parallel-size 1 --target-expert-parallel-size 4 --target-moe-grouped-gemm");
    Path viaHf = run("hf2mcore", back, "pairs-two", "--target-expert-parallel-size 4 --moe-grouped-gemm "
        + "--mtp-num-layers 1");
    assertSameData(viaHf, direct);
  }

  /**
   * LoRA merge of V4's modules on the CPU (linear_q, linear_kv, o_down/o_up, q_up, shared and grouped experts,
   * eh_proj), both modes equal to an independent merge (make_lora.py); the layout comes from the args.
   */
  @Test
  void v4LoraMergeBothModesEqualAnIndependentMerge() throws Exception {
    Path mcore = run("hf2mcore", v4, "mcore", "--target-tensor-parallel-size 2 --target-expert-parallel-size 2 "
        + "--moe-grouped-gemm --mtp-num-layers 1");
    Path lora = work.resolve("lora");
    Torch.Result made = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/make_lora.py").toString(), "--mcore", mcore.toString(),
        "--out", lora.toString(), "--r", "4", "--alpha", "8", "--hidden", "64", "--local-experts", "4"));
    assertEquals(0, made.exit, made.output);
    Files.copy(v4.resolve("config.json"), lora.resolve("combined/config.json"));
    Files.copy(v4.resolve("config.json"), lora.resolve("merged/config.json"));
    TreeMap<String, byte[]> expected = Checkpoints.dataContents(run("mcore2hf", lora.resolve("merged"), "expected", ""));
    TreeMap<String, byte[]> combined = Checkpoints.dataContents(run("mcore2hf", lora.resolve("combined"), "combined",
        "--lora-r 4 --lora-alpha 8"));
    TreeMap<String, byte[]> separate = Checkpoints.dataContents(run("mcore2hf", mcore, "separate",
        "--lora-r 4 --lora-alpha 8 --lora-load " + lora.resolve("lora-only")));
    TreeMap<String, byte[]> unmerged = Checkpoints.dataContents(run("mcore2hf", mcore, "unmerged", ""));
    assertEquals(expected.keySet(), combined.keySet());
    int changed = 0;
    for (Map.Entry<String, byte[]> e : expected.entrySet()) {
      assertArrayEquals(e.getValue(), combined.get(e.getKey()), "unified: " + e.getKey());
      assertArrayEquals(e.getValue(), separate.get(e.getKey()), "--lora-load: " + e.getKey());
      if (!Arrays.equals(e.getValue(), unmerged.get(e.getKey()))) {
        changed++;
      }
    }
    assertTrue(changed >= 4, "the merge changed " + changed + " files");
  }

  /**
   * A V4 Base checkpoint (MTP layers with their own embedding and head), here with an MTP embedding unlike the main
   * one. As MindSpeed: whatever the model type, the MTP stage's embedding copy is the MTP layer's own embedding; as
   * deepseek4_base the args say Base and mcore2hf writes the MTP embedding and head back as copies of the main ones
   * (spec §5.4, §8 #11); as deepseek4 a note says they are not converted; deepseek4_base on a checkpoint without them
   * converts with the model's embedding, with a note.
   */
  @Test
  void v4BaseCheckpointsConvertAsEitherModelType() throws Exception {
    Path base = Checkpoints.tinyModel(work.resolve("v4-base"), "--v4", "--base", "--layers", "4");
    String own = "mtp.0.emb.tok_emb.weight";
    for (Path shard : Files.list(base).filter(p -> p.toString().endsWith(".safetensors")).toList()) {
      for (ckptbeam.io.tensor.TensorLocation t : ckptbeam.io.safetensors.SafetensorsHeader.read(shard.toString())
          .tensors()) {
        if (t.name().equals(own)) {
          try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(shard,
              java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap(new byte[] {(byte) 0x80, 0x3F, 0x00, 0x40}), t.offset()); // 1.0, 2.0
          }
        }
      }
    }
    for (String type : List.of("deepseek4_base", "deepseek4")) {
      Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", base.toString(), "--save-dir",
          work.resolve("base-as-" + type).toString(), "--model-type-hf", type, "--target-pipeline-parallel-size",
          "2", "--moe-grouped-gemm", "--mtp-num-layers", "1");
      assertEquals(0, r.exit, r.toString());
      List<String> check = new ArrayList<>(List.of("--pp", "2", "--grouped-gemm", "--mtp", "1"));
      if (type.equals("deepseek4_base")) {
        check.add("--v4-base");
      } else {
        assertTrue((r.out + r.err).contains("the MTP head is not converted"), r.toString());
      }
      String report = Torch.checkMcore(base, work.resolve("base-as-" + type), check.toArray(new String[0]));
      assertTrue(report.startsWith("OK "), report);
      Checkpoints.Run verified = Checkpoints.cli("verify", "--hf", base.toString(), "--mcore",
          work.resolve("base-as-" + type).toString());
      assertEquals(0, verified.exit, verified.toString());
    }
    Path back = run("mcore2hf", work.resolve("base-as-deepseek4_base"), "back", "");
    TreeMap<String, byte[]> in = Checkpoints.hfTensors(base);
    TreeMap<String, byte[]> out = Checkpoints.hfTensors(back);
    assertEquals(in.keySet(), out.keySet());
    for (String name : in.keySet()) {
      byte[] want = in.get(name.equals(own) ? "embed.weight" : name);
      assertArrayEquals(want, out.get(name), name + (name.equals(own) ? ": a copy of the main embedding" : ""));
    }
    Checkpoints.Run notBase = Checkpoints.cli("hf2mcore", "--load-dir", v4.toString(), "--save-dir",
        work.resolve("not-base").toString(), "--mtp-num-layers", "1", "--model-type-hf", "deepseek4_base",
        "--target-pipeline-parallel-size", "2", "--num-layers", "6");
    assertEquals(0, notBase.exit, notBase.toString());
    assertTrue((notBase.out + notBase.err).contains("has no Base MTP tensors"), notBase.toString());
    String report = Torch.checkMcore(v4, work.resolve("not-base"), "--pp", "2", "--mtp", "1", "--v4-base");
    assertTrue(report.startsWith("OK "), report);
  }

  /** V4's release (FP8 with e8m0 scales, MXFP4 experts): fp8-to-bf16 exact, one pass equals the two. */
  @Test
  void v4ReleaseDequantisesExactlyAndConvertsInOnePass() throws Exception {
    Path release = Checkpoints.tinyModel(work.resolve("v4-release"), "--v4", "--fp8", "--fp8-block", "16");
    Path bf16 = run("fp8-to-bf16", release, "bf16", "");
    Torch.Result ok = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/check_fp8.py").toString(), release.toString(),
        bf16.toString(), "16"));
    assertTrue(ok.exit == 0 && ok.output.startsWith("OK "), ok.output);
    assertFalse(Files.readString(bf16.resolve("config.json")).contains("quantization_config"));
    String layout = "--target-tensor-parallel-size 2 --target-expert-parallel-size 2 --moe-grouped-gemm "
        + "--mtp-num-layers 1";
    Path direct = run("hf2mcore", release, "direct", layout);
    Path two = run("hf2mcore", bf16, "two", layout);
    assertSameData(two, direct);
    String report = Torch.checkMcore(bf16, direct, "--tp", "2", "--ep", "2", "--grouped-gemm", "--mtp", "1");
    assertTrue(report.startsWith("OK "), report);
  }

  /**
   * An MXFP4 expert scale holding e8m0's NaN code (255) is refused by name while the shards are located, before
   * anything is written (V4 spec §7.2), by both commands that read the release.
   */
  @ParameterizedTest
  @CsvSource({"hf2mcore", "fp8-to-bf16"})
  void v4ReleaseWithANaNExpertScaleIsRefusedBeforeAnythingIsWritten(String command) throws Exception {
    Path release = Checkpoints.tinyModel(work.resolve("v4-nan-" + command), "--v4", "--fp8");
    String scale = "layers.1.ffn.experts.2.w2.scale";
    ckptbeam.io.tensor.TensorLocation loc = null;
    for (Path shard : Files.list(release).filter(p -> p.toString().endsWith(".safetensors")).toList()) {
      for (ckptbeam.io.tensor.TensorLocation t : ckptbeam.io.safetensors.SafetensorsHeader.read(shard.toString())
          .tensors()) {
        loc = t.name().equals(scale) ? t : loc;
      }
    }
    long row = loc.shape().dim(0) - 1; // the last row's first scale
    try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(Path.of(loc.file()),
        java.nio.file.StandardOpenOption.WRITE)) {
      ch.write(java.nio.ByteBuffer.wrap(new byte[] {(byte) 0xFF}), loc.offset() + row * loc.shape().dim(1));
    }
    Path out = work.resolve("never-" + command);
    Checkpoints.Run r = Checkpoints.cli(command, "--load-dir", release.toString(), "--save-dir", out.toString(),
        "--quiet");
    assertEquals(1, r.exit, r.toString());
    assertTrue(r.err.contains("scale \"" + scale + "\" holds NaN at block [" + row + ", 0]"), r.err);
    assertFalse(Files.exists(out), "nothing written: " + r);
  }

  @Test
  void v4ReleaseWithAMissingOrV3NamedScaleIsRefusedByName() throws Exception {
    Path release = Checkpoints.tinyModel(work.resolve("v4-bad"), "--v4", "--fp8");
    // rename one FP8 scale to V3's naming in the index and in its shard header (same length: ".scale" -> "_sinv_")
    String scale = "layers.1.attn.wq_a.scale";
    String renamed = "layers.1.attn.wq_a_sinv_";
    Path index = release.resolve("model.safetensors.index.json");
    Files.writeString(index, Files.readString(index).replace(scale, renamed));
    for (Path shard : Files.list(release).filter(p -> p.toString().endsWith(".safetensors")).toList()) {
      byte[] b = Files.readAllBytes(shard);
      String head = new String(b, 0, Math.min(b.length, 1 << 16), java.nio.charset.StandardCharsets.ISO_8859_1);
      int at = head.indexOf(scale);
      if (at >= 0) {
        System.arraycopy(renamed.getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, b, at, renamed.length());
        Files.write(shard, b);
      }
    }
    Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", release.toString(), "--save-dir",
        work.resolve("refused").toString(), "--mtp-num-layers", "1", "--quiet");
    assertEquals(1, r.exit, r.toString());
    assertTrue(r.err.contains("layers.1.attn.wq_a.weight\" is F8_E4M3 but the checkpoint has no "
        + "\"layers.1.attn.wq_a.scale\""), r.err);
    assertFalse(Files.exists(work.resolve("refused").resolve("latest_checkpointed_iteration.txt")));
  }

  /** MindSpeed's hf2mcore also takes a few V4 weights without ".weight"; so do we, with the same output. */
  @Test
  void v4WeightsWithoutTheWeightSuffixConvertTheSame() throws Exception {
    Path bare = Checkpoints.copyTree(v4, work.resolve("v4-bare"));
    for (String name : List.of("layers.0.attn.wo_a.weight", "layers.1.ffn.experts.3.w1.weight",
        "mtp.0.ffn.shared_experts.w2.weight")) {
      renameTensor(bare, name, name.substring(0, name.length() - ".weight".length()));
    }
    String layout = "--target-tensor-parallel-size 2 --target-expert-parallel-size 2 --moe-grouped-gemm "
        + "--mtp-num-layers 1";
    assertSameData(run("hf2mcore", v4, "canonical", layout), run("hf2mcore", bare, "bare", layout));
  }

  /** Renames a tensor in a safetensors folder: the index and its shard's header (rewritten, data unchanged). */
  private static void renameTensor(Path folder, String from, String to) throws Exception {
    ObjectMapper json = new ObjectMapper();
    Path index = folder.resolve("model.safetensors.index.json");
    var idx = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(index.toFile());
    var map = (com.fasterxml.jackson.databind.node.ObjectNode) idx.get("weight_map");
    String shard = map.remove(from).asText();
    map.put(to, shard);
    Files.write(index, json.writeValueAsBytes(idx));
    Path file = folder.resolve(shard);
    byte[] b = Files.readAllBytes(file);
    int n = (int) java.nio.ByteBuffer.wrap(b, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
    var header = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(new String(b, 8, n,
        java.nio.charset.StandardCharsets.UTF_8));
    header.set(to, header.remove(from));
    StringBuilder text = new StringBuilder(json.writeValueAsString(header));
    while (text.length() % 8 != 0) {
      text.append(' ');
    }
    byte[] h = text.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    out.write(java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
    out.write(h);
    out.write(b, 8 + n, b.length - 8 - n);
    Files.write(file, out.toByteArray());
  }

  /** A hash table entry outside the experts is refused before anything is written, naming the tensor. */
  @Test
  void v4HashTableWithAnExpertOutOfRangeIsRefused() throws Exception {
    Path bad = Checkpoints.copyTree(v4, work.resolve("v4-bad-hash"));
    String name = "layers.1.ffn.gate.tid2eid";
    String shard = new ObjectMapper().readTree(bad.resolve("model.safetensors.index.json").toFile())
        .get("weight_map").get(name).asText();
    Path file = bad.resolve(shard);
    byte[] b = Files.readAllBytes(file);
    long headerLength = java.nio.ByteBuffer.wrap(b, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
    var header = new ObjectMapper().readTree(new String(b, 8, (int) headerLength,
        java.nio.charset.StandardCharsets.UTF_8));
    int at = (int) (8 + headerLength + header.get(name).get("data_offsets").get(0).asLong()) + 4 * 5;
    java.nio.ByteBuffer.wrap(b, at, 4).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(99); // 8 experts
    Files.write(file, b);
    Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", bad.toString(), "--save-dir",
        work.resolve("refused").toString(), "--mtp-num-layers", "1", "--quiet");
    assertTrue(r.exit != 0 && r.err.contains("\"" + name + "\" entry 5 is expert 99, outside 0..7"), r.toString());
    assertFalse(Files.exists(work.resolve("refused").resolve("latest_checkpointed_iteration.txt")));
  }

  /**
   * mcore2hf of a copy of {@code mcore} (into {@code refused-NAME}) whose rank files were edited by Python
   * {@code statements} ({@link #editArgs}).
   */
  private Checkpoints.Run mcore2hfOfAnEditedCopy(Path mcore, String name, String... statements)
      throws Exception {
    Path copy = Checkpoints.copyTree(mcore, work.resolve("edited-" + name));
    editArgs(copy, statements);
    return Checkpoints.cli("mcore2hf", "--load-dir", copy.toString(), "--save-dir",
        work.resolve("refused-" + name).toString());
  }

  /**
   * Runs Python {@code statements} on every rank file of {@code mcore} in torch, with its args Namespace as {@code a}
   * and the whole saved dict as {@code d}.
   */
  private static void editArgs(Path mcore, String... statements) throws Exception {
    Torch.requireTorch();
    List<String> script = new ArrayList<>(List.of("import glob, sys, torch",
        "for f in glob.glob(sys.argv[1] + '/iter_0000001/*/model_optim_rng.pt'):",
        "    d = torch.load(f, weights_only=False)",
        "    a = d['args']"));
    for (String statement : statements) {
      script.add("    " + statement);
    }
    script.add("    torch.save(d, f)");
    Torch.Result edited = Torch.run(List.of(Torch.PYTHON, "-c", String.join("\n", script), mcore.toString()));
    assertEquals(0, edited.exit, edited.output);
  }

  /** Every tensor of {@code hf} comes back in {@code back} with the same bytes (check_roundtrip.py). */
  private static void assertBitExact(Path hf, Path back) throws Exception {
    String report = RoundTripTest.roundTrip(hf, back, "");
    assertTrue(report.startsWith("OK "), report);
  }

  private static void assertSameData(Path expected, Path actual) throws Exception {
    TreeMap<String, byte[]> a = Checkpoints.dataContents(expected);
    TreeMap<String, byte[]> b = Checkpoints.dataContents(actual);
    assertEquals(a.keySet(), b.keySet());
    for (Map.Entry<String, byte[]> e : a.entrySet()) {
      if (!e.getKey().equals("config.json")) {
        assertArrayEquals(e.getValue(), b.get(e.getKey()), e.getKey());
      }
    }
  }
}
