package ckptbeam.pipelines;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine;

/**
 * The flags of one command, parsed by picocli. Flags are {@code --name value} or {@code --name=value}; switches take
 * no value. Each flag has a help line ({@link #help}) that {@code --help} prints. Flags the command does not know are
 * kept, in {@code --name=value} form, for Beam's {@code PipelineOptionsFactory}, which rejects the ones it does not
 * know either (with a suggestion from {@link #nearest}): no flag is silently ignored.
 */
public final class Args {
  /** How a flag is used: one value, no value, or every following value up to the next flag. */
  public enum Kind { VALUE, SWITCH, MULTI }

  private static final class Flag {
    final String name;
    final Kind kind;
    final List<String> aliases = new ArrayList<>();
    String label = "VALUE";
    String description = "";
    String defaultValue;

    Flag(String name, Kind kind) {
      this.name = name;
      this.kind = kind;
    }
  }

  private final Map<String, Flag> flags = new LinkedHashMap<>();
  private Flag last;
  private final Map<String, String> values = new LinkedHashMap<>();
  private final List<String> beamArgs = new ArrayList<>();

  public Args value(String... names) {
    return define(Kind.VALUE, names);
  }

  public Args flag(String... names) {
    return define(Kind.SWITCH, names);
  }

  /** A flag taking several values, space- or comma-separated ({@code --lora-target-modules a b c}). */
  public Args multi(String... names) {
    return define(Kind.MULTI, names);
  }

  /** Defines a flag; extra names are aliases of the first. */
  private Args define(Kind kind, String... names) {
    last = new Flag(names[0], kind);
    for (int i = 1; i < names.length; i++) {
      last.aliases.add(names[i]);
    }
    flags.put(names[0], last);
    return this;
  }

  /** The help of the flag defined last: what its value is ({@code N}, {@code DIR}) and what it means. */
  public Args help(String label, String description) {
    last.label = label;
    last.description = description;
    return this;
  }

  /** The help of a switch. */
  public Args help(String description) {
    last.description = description;
    return this;
  }

  /** The default shown in the help (the command applies it; absent flags stay absent here). */
  public Args defaultValue(String value) {
    last.defaultValue = value;
    return this;
  }

  /** The picocli model of these flags, for parsing, help and completion. */
  CommandSpec spec(String command, String summary) {
    CommandSpec spec = CommandSpec.create().name(command);
    spec.usageMessage().description(summary).sortOptions(false).width(118);
    spec.parser().unmatchedArgumentsAllowed(true).unmatchedOptionsArePositionalParams(false)
        .splitQuotedStrings(false).overwrittenOptionsAllowed(false).unmatchedOptionsAllowedAsOptionParameters(false);
    for (Flag f : flags.values()) {
      List<String> names = new ArrayList<>(List.of("--" + f.name));
      f.aliases.forEach(a -> names.add("--" + a));
      String description = f.description + (f.defaultValue == null ? "" : " (default: " + f.defaultValue + ")");
      OptionSpec.Builder b = OptionSpec.builder(names.toArray(new String[0])).description(description);
      switch (f.kind) {
        case SWITCH:
          b.arity("0").type(boolean.class);
          break;
        case MULTI:
          b.arity("1..*").type(List.class).auxiliaryTypes(String.class).paramLabel(f.label);
          break;
        default:
          b.arity("1").type(String.class).paramLabel(f.label);
      }
      spec.addOption(b.build());
    }
    spec.addOption(OptionSpec.builder("--help", "-h").usageHelp(true).description("Show this help and exit.")
        .build());
    return spec;
  }

  /** The help text of a command with these flags. */
  String usage(String command, String summary) {
    return new CommandLine(spec(command, summary)).getUsageMessage(CommandLine.Help.Ansi.OFF);
  }

  public Args parse(String[] argv) {
    CommandLine cl = new CommandLine(spec("ckptbeam", ""));
    ParseResult result;
    try {
      result = cl.parseArgs(argv);
    } catch (CommandLine.OverwrittenOptionException e) {
      throw new IllegalArgumentException(((OptionSpec) e.getOverwritten()).longestName() + " is given twice");
    } catch (CommandLine.ParameterException e) {
      throw new IllegalArgumentException(e.getMessage());
    }
    for (Flag f : flags.values()) {
      OptionSpec o = result.matchedOption("--" + f.name);
      if (o == null) {
        continue;
      }
      String value;
      if (f.kind == Kind.SWITCH) {
        value = "true";
      } else if (f.kind == Kind.MULTI) {
        List<String> parts = o.getValue();
        value = String.join(",", parts);
      } else {
        value = o.getValue();
      }
      values.put(f.name, value);
    }
    List<String> unmatched = result.unmatched();
    for (int i = 0; i < unmatched.size(); i++) {
      String a = unmatched.get(i);
      if (!a.startsWith("--") || a.length() == 2) {
        throw new IllegalArgumentException("unexpected argument \"" + a + "\" (flags start with --)");
      }
      if (!a.contains("=") && i + 1 < unmatched.size() && !unmatched.get(i + 1).startsWith("--")) {
        beamArgs.add(a + "=" + unmatched.get(++i));
      } else {
        beamArgs.add(a);
      }
    }
    return this;
  }

  /** Every flag name (without {@code --}), aliases included. */
  public List<String> names() {
    List<String> out = new ArrayList<>();
    for (Flag f : flags.values()) {
      out.add(f.name);
      out.addAll(f.aliases);
    }
    return out;
  }

  /**
   * The flag among {@code candidates} closest to {@code typed} (both without {@code --}) if it is close enough to be
   * a typo, else null.
   */
  static String nearest(String typed, List<String> candidates) {
    String best = null;
    int bestDistance = Integer.MAX_VALUE;
    for (String c : candidates) {
      int d = distance(typed, c);
      if (d < bestDistance) {
        best = c;
        bestDistance = d;
      }
    }
    return best != null && bestDistance <= Math.max(2, Math.min(typed.length(), best.length()) / 3) ? best : null;
  }

  /** Levenshtein distance. */
  private static int distance(String a, String b) {
    int[] prev = new int[b.length() + 1];
    int[] cur = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      prev[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      cur[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        cur[j] = Math.min(Math.min(cur[j - 1], prev[j]) + 1, prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
      }
      int[] t = prev;
      prev = cur;
      cur = t;
    }
    return prev[b.length()];
  }

  /** An unknown flag, for commands that take no Beam options: named, with the nearest known flag. */
  IllegalArgumentException unknown(String flag, String command) {
    String name = flag.replaceFirst("^--", "").replaceFirst("=.*$", "");
    String near = nearest(name, names());
    return new IllegalArgumentException("unknown flag --" + name + " for " + command
        + (near == null ? "" : "; did you mean --" + near + "?") + " (see ckptbeam " + command + " --help)");
  }

  /** Fails on the first flag the command does not know (commands without Beam options). */
  Args noBeamArgs(String command) {
    if (!beamArgs.isEmpty()) {
      throw unknown(beamArgs.get(0), command);
    }
    return this;
  }

  public boolean has(String name) {
    return values.containsKey(name);
  }

  public String get(String name) {
    return values.get(name);
  }

  public String require(String name) {
    String v = values.get(name);
    if (v == null || v.isEmpty()) {
      throw new IllegalArgumentException("--" + name + " is required");
    }
    return v;
  }

  public int intValue(String name, int dflt) {
    String v = values.get(name);
    if (v == null) {
      return dflt;
    }
    try {
      return Integer.parseInt(v.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--" + name + " must be an integer, got \"" + v + "\"");
    }
  }

  public long longValue(String name, long dflt) {
    String v = values.get(name);
    if (v == null) {
      return dflt;
    }
    try {
      return Long.parseLong(v.trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--" + name + " must be an integer, got \"" + v + "\"");
    }
  }

  /** A comma-separated list of integers ({@code --noop-layers 47,62,63}). */
  public int[] intList(String name) {
    String v = values.get(name);
    return v == null ? null : parseIntList(name, v);
  }

  /** {@code v} parsed as the comma-separated integers of flag {@code name} (errors name the flag). */
  public int[] parseIntList(String name, String v) {
    String[] parts = v.split(",");
    int[] out = new int[parts.length];
    for (int i = 0; i < parts.length; i++) {
      try {
        out[i] = Integer.parseInt(parts[i].trim());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--" + name + " must be a comma-separated list of integers, got \"" + v
            + "\"");
      }
    }
    return out;
  }

  /** The values of a {@link #multi} flag (commas split too), or an empty list. */
  public List<String> list(String name) {
    String v = values.get(name);
    List<String> out = new ArrayList<>();
    if (v != null) {
      for (String p : v.split(",")) {
        if (!p.isBlank()) {
          out.add(p.trim());
        }
      }
    }
    return out;
  }

  /** Every ckptbeam flag given, by canonical name. */
  public Map<String, String> values() {
    return Collections.unmodifiableMap(values);
  }

  /** Flags left for Beam, in {@code --name=value} form. */
  public List<String> beamArgs() {
    return beamArgs;
  }
}
