package ckptbeam.transforms.beam;

import ckptbeam.transforms.ConversionRequest;
import java.util.List;

/**
 * What the commit step of a conversion hears, keyed by the conversion: that it was planned (its request, fingerprint
 * and the number of files to wait for; the commit itself is derived again from the request), each written file, a
 * writer's failure, or an outcome decided while planning (failed, already converted). Small: no tensor bytes. Encoded
 * by {@link ConversionCoders.CommitEventCoder}.
 */
final class CommitEvent {
  enum Kind {
    PLANNED, PLAN_FAILED, ALREADY_CONVERTED, WRITTEN, WRITE_FAILED
  }

  final Kind kind;
  /** With PLANNED, PLAN_FAILED and ALREADY_CONVERTED. */
  final ConversionRequest request;
  /** With PLANNED: the fingerprint the commit derived again must have. */
  final String fingerprint;
  /** With PLANNED: how many data files the conversion writes. */
  final int expectedFiles;
  final List<String> notes;
  final long startMillis;
  /** With WRITTEN. */
  final WrittenFile file;
  /** The target of WRITTEN and WRITE_FAILED. */
  final String target;
  /** With PLAN_FAILED and WRITE_FAILED. */
  final String message;

  CommitEvent(Kind kind, ConversionRequest request, String fingerprint, int expectedFiles, List<String> notes,
      long startMillis, WrittenFile file, String target, String message) {
    this.kind = kind;
    this.request = request;
    this.fingerprint = fingerprint;
    this.expectedFiles = expectedFiles;
    this.notes = notes == null ? List.of() : List.copyOf(notes);
    this.startMillis = startMillis;
    this.file = file;
    this.target = target;
    this.message = message;
  }

  static CommitEvent planned(ConversionRequest r, String fingerprint, int expectedFiles, List<String> notes,
      long start) {
    return new CommitEvent(Kind.PLANNED, r, fingerprint, expectedFiles, notes, start, null, null, null);
  }

  static CommitEvent planFailed(ConversionRequest r, String message, long start) {
    return new CommitEvent(Kind.PLAN_FAILED, r, null, 0, null, start, null, null, message);
  }

  static CommitEvent alreadyConverted(ConversionRequest r, long start) {
    return new CommitEvent(Kind.ALREADY_CONVERTED, r, null, 0, null, start, null, null, null);
  }

  static CommitEvent written(WrittenFile f) {
    return new CommitEvent(Kind.WRITTEN, null, null, 0, null, 0, f, f.relativePath, null);
  }

  static CommitEvent writeFailed(String target, String message) {
    return new CommitEvent(Kind.WRITE_FAILED, null, null, 0, null, 0, null, target, message);
  }
}
