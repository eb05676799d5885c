package ckptbeam.transforms.beam;

import java.io.Serializable;
import org.apache.beam.sdk.coders.CoderException;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.coders.StructuralByteArray;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.TypeDescriptor;

/**
 * Java serialisation for the conversion's small descriptions (requests, target files, commit events, results), whose
 * identity is their encoding: runners that compare elements (the DirectRunner's mutation checks, deduplication)
 * compare bytes, so the classes need no {@code equals} over plans and locations.
 */
final class DescriptionCoder<T extends Serializable> extends SerializableCoder<T> {
  private static final long serialVersionUID = 1L;

  private DescriptionCoder(Class<T> type) {
    super(type, TypeDescriptor.of(type));
  }

  static <T extends Serializable> DescriptionCoder<T> describing(Class<T> type) {
    return new DescriptionCoder<>(type);
  }

  @Override
  public boolean consistentWithEquals() {
    return false;
  }

  @Override
  public Object structuralValue(T value) {
    try {
      return new StructuralByteArray(CoderUtils.encodeToByteArray(this, value));
    } catch (CoderException e) {
      throw new IllegalArgumentException("cannot encode " + value, e);
    }
  }
}
