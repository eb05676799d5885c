package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.storage.Sha256;
import ckptbeam.transforms.beam.WrittenFile;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The commit (side files, generated files, manifest, then the marker) and the progress records of --resume. */
class CheckpointCommitTest {
  @TempDir Path work;

  private WrittenFile written(Path save, String rel, String content) throws IOException {
    Path f = save.resolve(rel);
    Files.createDirectories(f.getParent());
    Files.writeString(f, content);
    return new WrittenFile(rel, Files.size(f), Files.size(f), Sha256.ofFile(f.toString()),
        List.of(new WrittenFile.Tensor("model/w", "BF16", new long[] {2, 2}, List.of("w"))), false);
  }

  /** The commit of a two-rank-file conversion from an input folder with a tokenizer (a side file). */
  private CheckpointCommit commit(Path save) throws IOException {
    Path in = Files.createDirectories(work.resolve("in"));
    Files.writeString(in.resolve("tokenizer.json"), "{\"tok\": 1}");
    return new CheckpointCommit(save.toString(), List.of("iter_0000001/mp_rank_00/model_optim_rng.pt",
        "iter_0000001/mp_rank_01/model_optim_rng.pt"), Map.of(in.resolve("tokenizer.json").toString(),
        "tokenizer.json"), Map.of("config.json", "{\"generated\": true}".getBytes(StandardCharsets.UTF_8)),
        "latest_checkpointed_iteration.txt", CheckpointCommit.tracker(1),
        OutputRecords.header("hf2mcore", Map.of("target-tensor-parallel-size", "2"), in.toString(),
            Map.of("config.json", "c0ffee"), "f"));
  }

  @Test
  void aCompleteConversionGetsSideFilesManifestAndLastTheMarker() throws Exception {
    Path save = work.resolve("save");
    WrittenFile a = written(save, "iter_0000001/mp_rank_01/model_optim_rng.pt", "bytes of rank 1");
    WrittenFile b = written(save, "iter_0000001/mp_rank_00/model_optim_rng.pt", "bytes of rank 0");
    ProgressRecord.write(save.toString(), "f", a);
    ProgressRecord.write(save.toString(), "f", b);
    commit(save).commit(List.of(a, b), List.of("1 input tensor(s) are not part of this layout"));

    assertEquals("{\"tok\": 1}", Files.readString(save.resolve("tokenizer.json")));
    assertEquals("{\"generated\": true}", Files.readString(save.resolve("config.json")));
    assertEquals("1", Files.readString(save.resolve("latest_checkpointed_iteration.txt")));
    JsonNode manifest = new ObjectMapper().readTree(save.resolve(CheckpointCommit.MANIFEST).toFile());
    assertEquals("f", manifest.get("fingerprint").asText());
    assertEquals(List.of("iter_0000001/mp_rank_00/model_optim_rng.pt", "iter_0000001/mp_rank_01/model_optim_rng.pt"),
        List.of(manifest.get("files").get(0).get("path").asText(), manifest.get("files").get(1).get("path").asText()),
        "sorted by path");
    assertEquals(b.sha256, manifest.get("files").get(0).get("sha256").asText());
    assertEquals("[\"1 input tensor(s) are not part of this layout\"]", manifest.get("notes").toString());
    assertEquals("{\"target-tensor-parallel-size\":\"2\"}", manifest.get("options").toString());
    assertEquals("c0ffee", manifest.get("input").get("sha256").get("config.json").asText());
    assertEquals(List.of("tool", "version", "command", "options", "input", "fingerprint", "notes", "files"),
        iterable(manifest.fieldNames()), "the manifest's fields in a fixed order");
    OutputRecords.Manifest back = OutputRecords.read(Files.readAllBytes(save.resolve(CheckpointCommit.MANIFEST)),
        OutputRecords.Manifest.class);
    assertEquals(b, back.files().get(0).toWrittenFile());
    assertFalse(Files.exists(save.resolve(ProgressRecord.DIR)), "the manifest holds what the records held");
    assertTrue(Files.getLastModifiedTime(save.resolve("latest_checkpointed_iteration.txt")).compareTo(
        Files.getLastModifiedTime(save.resolve(CheckpointCommit.MANIFEST))) >= 0, "the marker comes last");
  }

  @Test
  void aMissingFileCommitsNothing() throws Exception {
    Path save = work.resolve("save");
    WrittenFile a = written(save, "iter_0000001/mp_rank_00/model_optim_rng.pt", "rank 0");
    CheckpointCommit commit = commit(save);
    IOException e = assertThrows(IOException.class, () -> commit.commit(List.of(a), List.of()));
    assertEquals("conversion incomplete: 1 file(s) were not written, e.g. iter_0000001/mp_rank_01/model_optim_rng.pt; "
        + "no completion marker written", e.getMessage());
    assertFalse(Files.exists(save.resolve("latest_checkpointed_iteration.txt")));
    assertFalse(Files.exists(save.resolve(CheckpointCommit.MANIFEST)));
  }

  @Test
  void aProgressRecordIsReusedOnlyForTheSameConversionAndAnIntactFile() throws Exception {
    Path save = work.resolve("save");
    String rel = "iter_0000001/mp_rank_00/model_optim_rng.pt";
    WrittenFile f = written(save, rel, "the finished bytes");
    assertNull(ProgressRecord.reusable(save.toString(), "f", rel), "no record yet");
    ProgressRecord.write(save.toString(), "f", f);
    WrittenFile kept = ProgressRecord.reusable(save.toString(), "f", rel);
    assertEquals(f.reused(), kept);
    assertTrue(kept.reused);
    assertNull(ProgressRecord.reusable(save.toString(), "another conversion", rel));
    Files.writeString(save.resolve(rel), "the finished BYTES"); // same size, other bytes
    assertNull(ProgressRecord.reusable(save.toString(), "f", rel), "a changed file is written again");
    Files.writeString(save.resolve(rel), "the finished bytes");
    assertEquals(f.reused(), ProgressRecord.reusable(save.toString(), "f", rel));
    Files.writeString(Path.of(ProgressRecord.path(save.toString(), rel)), "{\"fingerprint\": \"f\", \"fi");
    assertNull(ProgressRecord.reusable(save.toString(), "f", rel), "a torn record: written again");
  }

  private static List<String> iterable(java.util.Iterator<String> names) {
    List<String> out = new java.util.ArrayList<>();
    names.forEachRemaining(out::add);
    return out;
  }

  /** MindSpeed's --hf-cfg-dir: its own config, tokenizer and code files; never its index, manifest or subfolders. */
  @Test
  void anHfConfigDirGivesItsTokenizerAndCodeFilesButNeverItsIndex() throws Exception {
    Path dir = Files.createDirectories(work.resolve("hf"));
    for (String name : List.of("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "tokenizer.model", "spiece.model.v3", "chat_template.jinja", "merges.txt", "modeling_deepseek.py",
        "configuration_deepseek.py", "tokenization_kimi.py", "sample_finetune.py", "model.safetensors.index.json",
        "pytorch_model.bin.index.json", "ckptbeam-manifest.json", "model-00001-of-000002.safetensors", "README.md", "convert.py", "sub/extra.json")) {
      Files.createDirectories(dir.resolve(name).getParent());
      Files.writeString(dir.resolve(name), name);
    }
    Map<String, String> files = ConversionPlanner.hfConfigFiles(dir.toString());
    assertEquals(List.of("chat_template.jinja", "configuration_deepseek.py", "generation_config.json", "merges.txt",
        "modeling_deepseek.py", "sample_finetune.py", "spiece.model.v3", "tokenization_kimi.py",
        "tokenizer.json", "tokenizer.model", "tokenizer_config.json"), files.values().stream().sorted().toList());
    files.forEach((path, name) -> assertEquals(dir.resolve(name).toString(), path));
  }
}
