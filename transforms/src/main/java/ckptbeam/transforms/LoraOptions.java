package ckptbeam.transforms;

import java.io.Serializable;

/** {@code --lora-r}, {@code --lora-alpha} and {@code --lora-load}: merge LoRA weights into the base (§5.5). */
public final class LoraOptions implements Serializable {
  private static final long serialVersionUID = 1L;

  public final int rank;
  public final double alpha;
  /** A separate LoRA-only checkpoint folder, or null when the LoRA weights are in the base checkpoint. */
  public final String loraDir;
  /** Its iteration folder, from its own tracker. */
  public final String loraIterationDir;

  public LoraOptions(int rank, double alpha, String loraDir, String loraIterationDir) {
    if (rank <= 0) {
      throw new IllegalArgumentException("--lora-r must be positive, got " + rank);
    }
    this.rank = rank;
    this.alpha = alpha;
    this.loraDir = loraDir;
    this.loraIterationDir = loraIterationDir;
  }

  /** {@code alpha / r}, as the float PyTorch multiplies a bf16 tensor by. */
  public float scale() {
    return (float) (alpha / rank);
  }
}
