package ckptbeam.transforms;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.tensor.Shape;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * hf2mcore: config.json and the layout give the rank files; the index must name every tensor the layout reads
 * (a DeepSeek-V3.2 indexer the config does not declare is refused); input tensors the layout leaves out are noted.
 */
final class Hf2McorePlanner implements KindPlanner {
  @Override
  public CheckedConversion plan(ConversionRequest r, boolean validate) throws IOException {
    ModelConfig config = ModelConfig.read(CheckpointFiles.resolve(r.loadDir(), "config.json"));
    LayoutOptions layout = ConversionPlanner.targetLayout(r.layout(), config);
    boolean mtpCopy = config.v4() && layout.mtpLayers() > 0;
    SafetensorsIndex index = validate || mtpCopy ? SafetensorsIndex.read(r.loadDir()) : null;
    // the MTP stage's embedding copy is the (last) MTP layer's own embedding where the checkpoint has one
    ModelConfig cfg = mtpCopy ? config.withMtpEmbeddingOf(index.weightMap().keySet(), layout.mtpLayers()) : config;
    Hf2McorePlan plan = new Hf2McorePlan(cfg, layout);
    Map<String, String> identity = ConversionPlanner.identity(r.loadDir(), SafetensorsIndex.FILE_NAME, "config.json");
    String fingerprint = ConversionPlanner.fingerprint(r, identity, layout);
    CheckpointCommit commit = new CheckpointCommit(r.saveDir(), plan.targets(), ConversionPlanner.sideFiles(
        r.loadDir()), Map.of(), Hf2McorePlan.TRACKER, CheckpointCommit.tracker(Hf2McorePlan.ITERATION),
        ConversionPlanner.manifestHeader(r, identity, fingerprint));
    if (!validate) {
      return new CheckedConversion(r, plan, commit, fingerprint, List.of(), -1, new HfShardSources(null, cfg));
    }
    // one pass over the plan: the HF tensors it reads, and the bytes it will write (bf16, as nearly every tensor is)
    Map<String, Shape> needed = new LinkedHashMap<>();
    long planned = 0;
    for (RankFile f : plan.rankFiles()) {
      Hf2McorePlan.RankPlan rank = plan.plan(f);
      needed.putAll(rank.sources);
      planned += ConversionPlanner.plannedBytes(rank);
    }
    String indexPath = CheckpointFiles.resolve(r.loadDir(), SafetensorsIndex.FILE_NAME);
    List<String> notes = new ArrayList<>();
    if (cfg.v4()) {
      checkV4(cfg, layout, index, indexPath, notes);
    }
    List<String> missing = needed.keySet().stream().filter(n -> !index.weightMap().containsKey(n)
        && !(cfg.v4() && HfNames.v4Alias(n) != null && index.weightMap().containsKey(HfNames.v4Alias(n)))).toList();
    if (!missing.isEmpty()) {
      throw new IOException(indexPath + ": " + missing.size() + " tensor(s) the layout needs are not in the index, "
          + "e.g. \"" + missing.get(0) + "\"");
    }
    if (!cfg.dsaIndexer()) {
      // a V3.2 checkpoint read with a V3 config would silently lose its indexer
      String indexer = index.weightMap().keySet().stream().filter(n -> n.contains(".self_attn.indexer.")).findFirst()
          .orElse(null);
      if (indexer != null) {
        throw new IOException(indexPath + ": holds DeepSeek-V3.2 DSA indexer tensors (e.g. \"" + indexer + "\") that "
            + "config.json does not declare (no model_type deepseek_v32 / index_n_heads); they would not be "
            + "converted");
      }
    }
    List<SourceFile> shards = ConversionPlanner.shards(r.loadDir(), index);
    notes.addAll(ConversionPlanner.unindexedShardsNote(r.loadDir(), index));
    TreeSet<String> ignored = new TreeSet<>(index.weightMap().keySet());
    ignored.removeAll(needed.keySet());
    if (cfg.v4()) {
      needed.keySet().forEach(n -> ignored.remove(HfNames.v4Alias(n) == null ? n : HfNames.v4Alias(n)));
    }
    if (cfg.fp8) {
      // the block scales of the FP8 weights are used to dequantise them
      ignored.removeIf(n -> cfg.weightOfScale(n, needed::containsKey) != null);
    }
    if (!ignored.isEmpty()) {
      notes.add(ignored.size() + " input tensor(s) are not part of this layout and are not converted, e.g. "
          + ignored.first() + ConversionPlanner.mtpHint(cfg, layout));
    }
    return new CheckedConversion(r, plan, commit, fingerprint, notes, planned, new HfShardSources(shards, cfg));
  }

  /** An MTP layer's compressor or indexer: another V4 generation's (V4 spec §1.3), checked against every name. */
  private static final Pattern MTP_ATTENTION_EXTRAS = Pattern.compile("mtp\\.\\d+\\.attn\\.(compressor|indexer)\\..*");

  /**
   * DeepSeek-V4's checks on the index (docs/mapping.md §11.5, §11.8): Base MTP tensors against the model type,
   * tensors of another V4 generation, and noop slots before real layers.
   */
  private static void checkV4(ModelConfig cfg, LayoutOptions layout, SafetensorsIndex index, String indexPath,
      List<String> notes) throws IOException {
    String baseKey = cfg.ownMtpEmbeddingName(Math.max(1, layout.mtpLayers()));
    boolean base = index.weightMap().containsKey(baseKey);
    if (layout.v4Base() && layout.mtpLayers() > 0 && !base) {
      notes.add("--model-type-hf deepseek4_base, but the checkpoint has no Base MTP tensors (no \"" + baseKey
          + "\"): the MTP stage's embedding copy is the model's embedding, and mcore2hf will write copies of the main "
          + "embedding and head as the MTP layers' own");
    }
    if (layout.mlaMmSplit()) {
      notes.add("--mla-mm-split has no effect on DeepSeek-V4 (its attention has no q/kv up-projections to split); "
          + "accepted as MindSpeed does, and recorded in the rank files' args");
    }
    if (!layout.v4Base() && base) {
      notes.add("the checkpoint has a Base model's MTP embedding and head (\"" + baseKey + "\"): as MindSpeed, the "
          + "MTP stage's embedding copy (pp > 1) is that embedding and the MTP head is not converted (the trainer "
          + "ties it to the main one); converted as deepseek4, mcore2hf will not write them back: "
          + "--model-type-hf deepseek4_base keeps the Base type in the rank files' args");
    }
    for (String n : index.weightMap().keySet()) {
      if (n.contains(".indexer.wk.") || n.contains("engram.")
          || MTP_ATTENTION_EXTRAS.matcher(n).matches()) {
        throw new IOException(indexPath + ": holds \"" + n + "\", a tensor of another DeepSeek-V4 generation (V4.1's "
            + "indexer.wk or engram, or an MTP compressor) that the V4 mapping does not have; refused rather than "
            + "dropped");
      }
      String mismatch = v4Mismatch(cfg, n);
      if (mismatch != null) {
        throw new IOException(indexPath + ": holds \"" + n + "\", but " + mismatch + " (config.json); the config "
            + "does not describe this checkpoint");
      }
    }
    checkNoopSlots(layout, notes);
  }

  /** Why a V4 tensor cannot exist in its layer by the config's compress ratios and hash layers, or null (§11.3). */
  private static String v4Mismatch(ModelConfig cfg, String name) {
    int layer = HfNames.layerOf(cfg, name);
    if (layer < 0) {
      return null;
    }
    boolean mtp = layer >= cfg.hiddenLayers;
    int ratio = cfg.compressRatio(layer);
    String where = mtp ? "MTP layer " + (layer - cfg.hiddenLayers) : "layer " + layer;
    if (!mtp && name.contains(".attn.compressor.") && ratio == 0) {
      return where + " has compress ratio 0 (no compressor)";
    }
    if (!mtp && name.contains(".attn.indexer.") && ratio != 4) {
      return where + " has compress ratio " + ratio + " (an indexer needs 4)";
    }
    if (name.endsWith(".ffn.gate.bias") && cfg.hashLayer(layer)) {
      return where + " is a hash layer (num_hash_layers " + cfg.hashLayers + "), routed by tid2eid";
    }
    if (name.endsWith(".ffn.gate.tid2eid") && !cfg.hashLayer(layer)) {
      return where + " is not a hash layer (num_hash_layers " + cfg.hashLayers + "), routed with a bias";
    }
    return null;
  }

  /** A note when a noop slot lies before a real layer. */
  private static void checkNoopSlots(LayoutOptions layout, List<String> notes) {
    int slot = 0;
    for (int noop : layout.noopLayers()) {
      if (noop < layout.numLayers() - layout.noopLayers().size() + slot) {
        notes.add("noop slot " + noop + " lies before a real layer: the trainer reads compress_ratios and hash routing "
            + "by global slot, this mapping (as MindSpeed's converter) by HF layer, so the two disagree after it");
        break;
      }
      slot++;
    }
  }
}
