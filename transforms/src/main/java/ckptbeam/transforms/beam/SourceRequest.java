package ckptbeam.transforms.beam;

import ckptbeam.io.Shape;
import java.io.Serializable;
import org.apache.beam.sdk.coders.DefaultCoder;
import org.apache.beam.sdk.coders.SerializableCoder;

/** A target file needs one source tensor, which must have the given shape. */
@DefaultCoder(SerializableCoder.class)
public final class SourceRequest implements Serializable {
  private static final long serialVersionUID = 1L;

  public final String target;
  public final Shape expectedShape;

  public SourceRequest(String target, Shape expectedShape) {
    this.target = target;
    this.expectedShape = expectedShape;
  }

  @Override
  public boolean equals(Object other) {
    if (!(other instanceof SourceRequest)) {
      return false;
    }
    SourceRequest o = (SourceRequest) other;
    return java.util.Objects.equals(target, o.target) && java.util.Objects.equals(expectedShape, o.expectedShape);
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(target, expectedShape);
  }
}
