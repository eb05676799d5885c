package ckptbeam.io;

import java.io.IOException;

/**
 * A checkpoint file breaks a rule of its format. The message always names the file, the rule and what is
 * wrong, so that one line is enough for the user to find the problem.
 */
public class CheckpointFormatException extends IOException {
  private static final long serialVersionUID = 1L;

  private final String file;
  private final String rule;

  public CheckpointFormatException(String file, String rule, String detail) {
    super(file + ": " + rule + ": " + detail);
    this.file = file;
    this.rule = rule;
  }

  /** The file that broke the rule. */
  public String file() {
    return file;
  }

  /** The short name of the broken rule ({@code HeaderTooLarge}, {@code InvalidOffset}, ...). */
  public String rule() {
    return rule;
  }
}
