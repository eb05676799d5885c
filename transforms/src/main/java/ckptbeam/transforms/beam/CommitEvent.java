package ckptbeam.transforms.beam;

import ckptbeam.transforms.CheckpointCommit;
import ckptbeam.transforms.ConversionRequest;
import java.io.Serializable;
import java.util.List;

/**
 * What the commit step of a conversion hears, keyed by the conversion: the plan (how many files to wait for and how
 * to commit them), each written file, a writer's failure, or an outcome decided while planning (failed, already
 * converted). Small: no tensor bytes.
 */
final class CommitEvent implements Serializable {
  private static final long serialVersionUID = 1L;

  enum Kind {
    PLANNED, PLAN_FAILED, ALREADY_CONVERTED, WRITTEN, WRITE_FAILED
  }

  final Kind kind;
  /** With PLANNED, PLAN_FAILED and ALREADY_CONVERTED. */
  final ConversionRequest request;
  /** With PLANNED. */
  final CheckpointCommit commit;
  final List<String> notes;
  final long startMillis;
  /** With WRITTEN. */
  final WrittenFile file;
  /** The target of WRITTEN and WRITE_FAILED. */
  final String target;
  /** With PLAN_FAILED and WRITE_FAILED. */
  final String message;

  private CommitEvent(Kind kind, ConversionRequest request, CheckpointCommit commit, List<String> notes,
      long startMillis, WrittenFile file, String target, String message) {
    this.kind = kind;
    this.request = request;
    this.commit = commit;
    this.notes = notes == null ? List.of() : List.copyOf(notes);
    this.startMillis = startMillis;
    this.file = file;
    this.target = target;
    this.message = message;
  }

  static CommitEvent planned(ConversionRequest r, CheckpointCommit commit, List<String> notes, long start) {
    return new CommitEvent(Kind.PLANNED, r, commit, notes, start, null, null, null);
  }

  static CommitEvent planFailed(ConversionRequest r, String message, long start) {
    return new CommitEvent(Kind.PLAN_FAILED, r, null, null, start, null, null, message);
  }

  static CommitEvent alreadyConverted(ConversionRequest r, long start) {
    return new CommitEvent(Kind.ALREADY_CONVERTED, r, null, null, start, null, null, null);
  }

  static CommitEvent written(WrittenFile f) {
    return new CommitEvent(Kind.WRITTEN, null, null, null, 0, f, f.relativePath, null);
  }

  static CommitEvent writeFailed(String target, String message) {
    return new CommitEvent(Kind.WRITE_FAILED, null, null, null, 0, null, target, message);
  }
}
