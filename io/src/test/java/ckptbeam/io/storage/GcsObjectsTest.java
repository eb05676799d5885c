package ckptbeam.io.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class GcsObjectsTest {
  @Test
  void pathsSplitIntoBucketAndObject() {
    assertEquals("bucket", GcsObjects.bucket("gs://bucket/dir/iter_0000001/mp_rank_00/model_optim_rng.pt"));
    assertEquals("dir/iter_0000001/mp_rank_00/model_optim_rng.pt",
        GcsObjects.object("gs://bucket/dir/iter_0000001/mp_rank_00/model_optim_rng.pt"));
    assertEquals("a b.json", GcsObjects.object("gs://b-1/a b.json"));
  }

  @Test
  void aPathWithoutObjectIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> GcsObjects.bucket("gs://bucket"));
    assertThrows(IllegalArgumentException.class, () -> GcsObjects.bucket("gs://bucket/"));
    assertThrows(IllegalArgumentException.class, () -> GcsObjects.bucket("gs:///object"));
  }
}
