package ckptbeam.io.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.FileNotFoundException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Local paths and file: URLs name the same files; listing a folder; a missing file is a definite answer. */
class CheckpointFilesTest {
  @TempDir Path dir;

  @Test
  void fileUrlsWorkWhereverPathsDo() throws Exception {
    Path ckpt = Files.createDirectories(dir.resolve("ckpt"));
    Files.writeString(ckpt.resolve("config.json"), "{}");
    for (String folder : List.of(ckpt.toString(), "file:" + ckpt, ckpt.toUri().toString())) {
      assertTrue(CheckpointFiles.isLocal(folder), folder);
      assertTrue(CheckpointFiles.isDirectory(folder), folder);
      String config = CheckpointFiles.resolve(folder, "config.json");
      assertEquals(ckpt.resolve("config.json").toString(), config, folder);
      assertEquals("{}", new String(CheckpointFiles.readSmallFile(config, 10), StandardCharsets.UTF_8));
      assertEquals(2, CheckpointFiles.sizeOrMissing(folder.replaceAll("/$", "") + "/config.json"), folder);
    }
    CheckpointFiles.writeSmallFile("file:" + ckpt.resolve("out/tracker.txt"), "1".getBytes(StandardCharsets.UTF_8));
    assertEquals("1", Files.readString(ckpt.resolve("out/tracker.txt")));
  }

  @Test
  void aFolderListsItsFilesAtAnyDepthAndAMissingFileIsMissing() throws Exception {
    Path save = dir.resolve("save");
    assertEquals(List.of(), CheckpointFiles.list(save.toString()), "a folder that does not exist holds nothing");
    Files.createDirectories(save.resolve("iter_0000001/mp_rank_00"));
    Files.writeString(save.resolve("iter_0000001/mp_rank_00/model_optim_rng.pt"), "x");
    Files.writeString(save.resolve("latest_checkpointed_iteration.txt"), "1");
    assertEquals(List.of("iter_0000001/mp_rank_00/model_optim_rng.pt", "latest_checkpointed_iteration.txt"),
        CheckpointFiles.list(save.toString()));
    assertEquals(-1, CheckpointFiles.sizeOrMissing(save.resolve("nothing").toString()));
    assertThrows(FileNotFoundException.class, () -> CheckpointFiles.open(save.resolve("nothing").toString()));
  }
}
