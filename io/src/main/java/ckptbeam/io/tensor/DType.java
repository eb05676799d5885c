package ckptbeam.io.tensor;

import java.util.Locale;

/**
 * Element types a checkpoint tensor can have, with their names in safetensors headers and in torch pickles.
 *
 * <p>The enum order is the safetensors writer's sort order (docs/formats.md §2.3): the reference serializer puts
 * tensors with a "larger" dtype first. Types with no legacy torch storage class (fp8) are rebuilt in torch with
 * {@code _rebuild_tensor_v3} over an {@code UntypedStorage} (docs/formats.md §1.8.3.2).
 */
public enum DType {
  BOOL(1, "BOOL", "bool", "BoolStorage"),
  U8(1, "U8", "uint8", "ByteStorage"),
  I8(1, "I8", "int8", "CharStorage"),
  F8_E5M2(1, "F8_E5M2", "float8_e5m2", null),
  F8_E4M3(1, "F8_E4M3", "float8_e4m3fn", null),
  /** A power of two 2^(e-127) per byte, 255 NaN: the block scales of DeepSeek-V4's FP8 and MXFP4 weights. */
  F8_E8M0(1, "F8_E8M0", "float8_e8m0fnu", null),
  I16(2, "I16", "int16", "ShortStorage"),
  F16(2, "F16", "float16", "HalfStorage"),
  BF16(2, "BF16", "bfloat16", "BFloat16Storage"),
  I32(4, "I32", "int32", "IntStorage"),
  F32(4, "F32", "float32", "FloatStorage"),
  F64(8, "F64", "float64", "DoubleStorage"),
  I64(8, "I64", "int64", "LongStorage");

  private final int size;
  private final String safetensorsName;
  private final String torchName;
  private final String torchStorageClass;

  DType(int size, String safetensorsName, String torchName, String torchStorageClass) {
    this.size = size;
    this.safetensorsName = safetensorsName;
    this.torchName = torchName;
    this.torchStorageClass = torchStorageClass;
  }

  /** Bytes per element. */
  public int size() {
    return size;
  }

  /** The dtype string of a safetensors header ({@code "BF16"}). */
  public String safetensorsName() {
    return safetensorsName;
  }

  /** The torch dtype name without the {@code torch.} prefix ({@code "bfloat16"}). */
  public String torchName() {
    return torchName;
  }

  /**
   * The legacy storage class a pickle names for this dtype ({@code "BFloat16Storage"}), or {@code null} when the
   * dtype has none and must go through {@code UntypedStorage} and {@code _rebuild_tensor_v3}.
   */
  public String torchStorageClass() {
    return torchStorageClass;
  }

  /** Whether torch can rebuild this dtype from a typed legacy storage ({@code _rebuild_tensor_v2}). */
  public boolean hasLegacyStorage() {
    return torchStorageClass != null;
  }

  /** Looks a safetensors dtype string up; the message of the exception names the unknown value. */
  public static DType fromSafetensors(String name) {
    for (DType t : values()) {
      if (t.safetensorsName.equals(name)) {
        return t;
      }
    }
    throw new IllegalArgumentException("unknown dtype \"" + name + "\"");
  }

  /** Looks a torch legacy storage class name up ({@code "FloatStorage"}), or returns null. */
  public static DType fromTorchStorageClass(String name) {
    for (DType t : values()) {
      if (name.equals(t.torchStorageClass)) {
        return t;
      }
    }
    return null;
  }

  /** Looks a torch dtype name up ({@code "float8_e4m3fn"}), or returns null. */
  public static DType fromTorchName(String name) {
    for (DType t : values()) {
      if (t.torchName.equals(name)) {
        return t;
      }
    }
    return null;
  }

  @Override
  public String toString() {
    return safetensorsName.toUpperCase(Locale.ROOT);
  }
}
