package ckptbeam.benchmarks;

import ckptbeam.io.safetensors.SafetensorsWriter;
import ckptbeam.io.tensor.TensorSpec;
import ckptbeam.transforms.CheckedConversion;
import ckptbeam.transforms.ConversionPlanner;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.HfInventory;
import ckptbeam.transforms.InputSources;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.LocatedFile;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.SourceFile;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How long planning takes for the full DeepSeek-V3 (671B) at MindSpeed's shipped layout (tp 2, pp 8, ep 32, 64 layer
 * slots with noop 47,62,63, VPP 2, MTP 1, grouped GEMM: 512 rank files), on an HF checkpoint of the real release's
 * shape whose 163 shards hold real headers and sparse data (nothing but headers is read while planning).
 *
 * <pre>
 * java -cp benchmarks/target/benchmarks.jar ckptbeam.benchmarks.PlanTime generate DIR
 * java -cp benchmarks/target/benchmarks.jar ckptbeam.benchmarks.PlanTime time DIR
 * java -cp benchmarks/target/benchmarks.jar ckptbeam.benchmarks.PlanTime generate-v4-pro DIR
 * </pre>
 *
 * <p>{@code generate-v4-pro} writes a DeepSeek-V4-Pro-shaped checkpoint the same way (its config as model cards give
 * it: hidden 7168, 128 heads of 512, 384 experts of 3072, 61 layers + 1 MTP; one shard per layer, 1.6T parameters in
 * bf16, 3.2 TB of holes), for timing {@code hf2mcore --dry-run} into the shipped layout.
 */
public final class PlanTime {
  /** DeepSeek-V3's config.json, its dimensions (the release's other keys do not change planning). */
  static final String CONFIG = "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"model_type\":\"deepseek_v3\","
      + "\"vocab_size\":129280,\"hidden_size\":7168,\"intermediate_size\":18432,\"moe_intermediate_size\":2048,"
      + "\"num_hidden_layers\":61,\"first_k_dense_replace\":3,\"moe_layer_freq\":1,\"n_routed_experts\":256,"
      + "\"n_shared_experts\":1,\"num_attention_heads\":128,\"q_lora_rank\":1536,\"kv_lora_rank\":512,"
      + "\"qk_nope_head_dim\":128,\"qk_rope_head_dim\":64,\"v_head_dim\":128,\"num_nextn_predict_layers\":1,"
      + "\"torch_dtype\":\"bfloat16\"}";
  static final int SHARDS = 163;

  /** DeepSeek-V4-Pro's config.json [model cards; unverified], Flash's compress-ratio pattern. */
  static String v4ProConfig() {
    StringBuilder ratios = new StringBuilder();
    for (int i = 0; i < 62; i++) {
      ratios.append(i == 0 ? "" : ",").append(i < 2 || i >= 61 ? 0 : i % 2 == 0 ? 4 : 128);
    }
    return "{\"architectures\":[\"DeepseekV4ForCausalLM\"],\"model_type\":\"deepseek_v4\",\"vocab_size\":129280,"
        + "\"hidden_size\":7168,\"num_attention_heads\":128,\"head_dim\":512,\"qk_rope_head_dim\":64,"
        + "\"q_lora_rank\":1536,\"o_lora_rank\":1024,\"o_groups\":16,\"n_routed_experts\":384,"
        + "\"num_experts_per_tok\":6,\"moe_intermediate_size\":3072,\"n_shared_experts\":1,\"hc_mult\":4,"
        + "\"index_n_heads\":64,\"index_head_dim\":128,\"num_hidden_layers\":61,\"num_nextn_predict_layers\":1,"
        + "\"num_hash_layers\":3,\"compress_ratios\":[" + ratios + "],\"tie_word_embeddings\":false,"
        + "\"torch_dtype\":\"bfloat16\"}";
  }

  private PlanTime() {}

  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[1]);
    if (args[0].equals("generate")) {
      generate(dir, CONFIG, SHARDS);
    } else if (args[0].equals("generate-v4-pro")) {
      generate(dir, v4ProConfig(), 64);
    } else {
      time(dir, args.length > 2 ? Integer.parseInt(args[2]) : 3);
    }
  }

  /** config.json, the index and the shards: headers written, tensor bytes a hole of the right length. */
  static void generate(Path dir, String config, int shards) throws Exception {
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("config.json"), config);
    ModelConfig cfg = ModelConfig.parse("config.json", config.getBytes(StandardCharsets.UTF_8));
    List<HfInventory.Entry> all = HfInventory.of(cfg);
    Map<String, String> weightMap = new LinkedHashMap<>();
    long total = 0;
    int per = (all.size() + shards - 1) / shards;
    for (int s = 0; s < shards; s++) {
      String name = String.format("model-%05d-of-%05d.safetensors", s + 1, shards);
      List<TensorSpec> specs = new ArrayList<>();
      for (HfInventory.Entry e : all.subList(Math.min(all.size(), s * per), Math.min(all.size(), (s + 1) * per))) {
        specs.add(new TensorSpec(e.name(), e.dtype(), e.shape(), sink -> {
          throw new IllegalStateException("never written");
        }));
        weightMap.put(e.name(), name);
      }
      byte[] header = SafetensorsWriter.header(SafetensorsWriter.fileOrder(specs), SafetensorsWriter.PT_METADATA);
      long data = specs.stream().mapToLong(TensorSpec::byteSize).sum();
      total += data;
      try (RandomAccessFile f = new RandomAccessFile(dir.resolve(name).toFile(), "rw")) {
        f.write(header);
        f.setLength(header.length + data); // sparse: planning reads headers only
      }
    }
    StringBuilder index = new StringBuilder("{\"metadata\": {\"total_size\": " + total + "}, \"weight_map\": {");
    String sep = "";
    for (Map.Entry<String, String> e : weightMap.entrySet()) {
      index.append(sep).append('"').append(e.getKey()).append("\": \"").append(e.getValue()).append('"');
      sep = ", ";
    }
    Files.writeString(dir.resolve("model.safetensors.index.json"), index.append("}}").toString());
    System.out.println(all.size() + " tensors, " + total + " bytes in " + shards + " shards at " + dir);
  }

  static LayoutOptions shipped() {
    return LayoutOptions.builder().tp(2).pp(8).ep(32).numLayers(64).noopLayers(List.of(47, 62, 63))
        .layersPerVirtualStage(2).mtpLayers(1).groupedGemm(true).build();
  }

  /** The planning steps, each timed; {@code rounds} times in one JVM (the first is cold). */
  static void time(Path dir, int rounds) throws Exception {
    ConversionRequest r = ConversionRequest.hf2mcore(dir.toString(), dir.resolveSibling("plan-time-out").toString(),
        shipped());
    for (int round = 1; round <= rounds; round++) {
      long t0 = System.nanoTime();
      CheckedConversion driver = ConversionPlanner.check(r);
      long t1 = System.nanoTime();
      CheckedConversion plan = ConversionPlanner.check(r); // the plan step, in the pipeline
      long t2 = System.nanoTime();
      List<LocatedFile> located = new ArrayList<>();
      long slowest = 0;
      for (SourceFile f : plan.sources.files()) {
        long a = System.nanoTime();
        located.add(plan.sources.locate(f)); // one element each, spread over the workers
        slowest = Math.max(slowest, System.nanoTime() - a);
      }
      long t3 = System.nanoTime();
      InputSources.Located sources = plan.sources.assemble(located);
      int targets = plan.targets(sources).size();
      long t4 = System.nanoTime();
      CheckedConversion derived = ConversionPlanner.derive(r); // each writer and the commit, once per DoFn instance
      long t5 = System.nanoTime();
      System.out.printf("round %d: driver check %.2f s; plan step %.2f s; locate %d files %.2f s (slowest file %.3f s);"
          + " assemble + %d targets %.2f s; derive %.2f s; planning in all, one core: %.2f s%n", round,
          (t1 - t0) / 1e9, (t2 - t1) / 1e9, located.size(), (t3 - t2) / 1e9, slowest / 1e9, targets,
          (t4 - t3) / 1e9, (t5 - t4) / 1e9, (t4 - t0) / 1e9);
      if (!derived.fingerprint.equals(driver.fingerprint)) {
        throw new IllegalStateException("derived plan differs");
      }
    }
  }
}
