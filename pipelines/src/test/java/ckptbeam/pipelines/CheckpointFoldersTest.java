package ckptbeam.pipelines;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointFoldersTest {
  @TempDir Path work;

  @Test
  void globsMatchWithinOneSegmentUnlessDoubled() {
    CheckpointFolders f = new CheckpointFolders("gs://b/incoming/*/", "gs://b/out/");
    assertTrue(f.matches("gs://b/incoming/run-1"));
    assertFalse(f.matches("gs://b/incoming/run-1/iter_0000001"));
    assertFalse(f.matches("gs://b/incoming"));
    CheckpointFolders deep = new CheckpointFolders("gs://b/**/ckpt-?", "gs://b/out");
    assertTrue(deep.matches("gs://b/x/y/ckpt-7"));
    assertFalse(deep.matches("gs://b/x/y/ckpt-77"));
    assertTrue(new CheckpointFolders("/data/in.d/*", "/o").matches("/data/in.d/a+b"), "regex characters are literal");
    assertFalse(new CheckpointFolders("/data/in.d/*", "/o").matches("/data/inXd/a"));
  }

  @Test
  void anObjectBelongsToTheFirstMatchingFolderOnItsPath() {
    CheckpointFolders f = new CheckpointFolders("gs://b/incoming/*/", "gs://b/out/");
    assertEquals("gs://b/incoming/run-1", f.folderOf("gs://b/incoming/run-1/iter_0000001/mp_rank_00/model_optim_rng.pt"));
    assertEquals("gs://b/incoming/run-1", f.folderOf("gs://b/incoming/run-1/model.safetensors.index.json"));
    assertNull(f.folderOf("gs://b/elsewhere/run-1/config.json"));
    assertNull(f.folderOf("gs://b/incoming/loose-file.json"), "a file directly under the pattern's parent is none");
  }

  @Test
  void outputsAndStatusRecordsAreNamedAfterTheInputFolder() {
    CheckpointFolders f = new CheckpointFolders("gs://b/incoming/*/", "gs://b/converted/");
    assertEquals("gs://b/converted/run-1", f.outputOf("gs://b/incoming/run-1"));
    assertEquals("gs://b/converted/run-1.ckptbeam-status.json", f.statusOf("gs://b/incoming/run-1"));
    assertEquals("/o/run-2", new CheckpointFolders("/i/*", "/o").outputOf("/i/run-2"));
  }

  @Test
  void notificationsGiveTheirObjectOrNothing() {
    assertEquals("gs://bk/a/b.json", CheckpointFolders.objectOfNotification(
        "{\"kind\":\"storage#object\",\"bucket\":\"bk\",\"name\":\"a/b.json\",\"size\":\"3\"}"));
    assertNull(CheckpointFolders.objectOfNotification("{\"bucket\":\"bk\"}"));
    assertNull(CheckpointFolders.objectOfNotification("not json at all"));
    assertNull(CheckpointFolders.objectOfNotification(""));
  }

  @Test
  void listingFindsFoldersThroughTheirMarker() throws Exception {
    Files.createDirectories(work.resolve("in/a"));
    Files.createDirectories(work.resolve("in/b"));
    Files.createDirectories(work.resolve("in/c/deeper"));
    Files.writeString(work.resolve("in/a/marker.txt"), "x");
    Files.writeString(work.resolve("in/c/deeper/marker.txt"), "x");
    CheckpointFolders f = new CheckpointFolders(work.resolve("in") + "/*/", work.resolve("out").toString());
    assertEquals(List.of(work.resolve("in/a").toString()), f.withMarker("marker.txt"));
  }

  @Test
  void aFolderReachedThroughALinkOutOfThePatternIsRefused() throws Exception {
    Path watched = Files.createDirectories(work.resolve("watched"));
    Path outside = Files.createDirectories(work.resolve("private/secret-ckpt"));
    Files.createDirectories(watched.resolve("real"));
    Files.createSymbolicLink(watched.resolve("evil"), outside);
    Files.createSymbolicLink(watched.resolve("alias"), watched.resolve("real"));
    CheckpointFolders f = new CheckpointFolders(watched + "/*/", work.resolve("out").toString());
    assertNull(f.outsideReason(watched.resolve("real").toString()));
    assertNull(f.outsideReason(watched.resolve("alias").toString()), "a link to a folder the pattern names");
    assertEquals("the folder " + watched.resolve("evil") + " is a symbolic link to " + outside.toRealPath()
        + ", which is outside the watched pattern " + watched + "/*; not converted",
        f.outsideReason(watched.resolve("evil").toString()));
    // the watched place may itself be reached through a link (a mount point): that is not leaving it
    Path mount = work.resolve("mount");
    Files.createSymbolicLink(mount, watched);
    CheckpointFolders viaMount = new CheckpointFolders(mount + "/*", work.resolve("out").toString());
    assertNull(viaMount.outsideReason(mount.resolve("real").toString()));
    assertTrue(viaMount.outsideReason(mount.resolve("evil").toString()).contains("outside the watched pattern"));
    assertNull(new CheckpointFolders("gs://b/in/*", "gs://b/out").outsideReason("gs://b/in/x"), "no links in a bucket");
  }

  @Test
  void anEmptyPatternIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> new CheckpointFolders("/", "/o"));
  }
}
