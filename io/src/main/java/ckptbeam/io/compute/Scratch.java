package ckptbeam.io.compute;

/**
 * Per-thread scratch arrays for the dequantising readers. A writer keeps one reader open per computed tensor until its
 * file is done (a grouped expert tensor has dozens), so a buffer per reader would grow memory with the tensor count;
 * a thread reads one range at a time, so one array per thread and use bounds it by the largest read (the assembler's
 * buffer).
 */
final class Scratch {
  static final ThreadLocal<byte[]> CODES = ThreadLocal.withInitial(() -> new byte[0]);
  static final ThreadLocal<byte[]> SCALES = ThreadLocal.withInitial(() -> new byte[0]);

  private Scratch() {}

  /** An array of at least {@code n} bytes, this thread's own for {@code which}. */
  static byte[] bytes(ThreadLocal<byte[]> which, int n) {
    byte[] b = which.get();
    if (b.length < n) {
      b = new byte[n];
      which.set(b);
    }
    return b;
  }
}
