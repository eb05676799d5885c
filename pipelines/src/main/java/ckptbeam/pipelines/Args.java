package ckptbeam.pipelines;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Command-line flags of one subcommand. Flags are {@code --name value} or {@code --name=value}; switches take no
 * value. Flags the subcommand does not know are kept, in {@code --name=value} form, for Beam's
 * {@code PipelineOptionsFactory}, which rejects the ones it does not know either: no flag is silently ignored.
 */
public final class Args {
  /** How a flag is used: one value, no value, or every following value up to the next flag. */
  public enum Kind { VALUE, SWITCH, MULTI }

  private final Map<String, Kind> known = new LinkedHashMap<>();
  private final Map<String, String> aliases = new LinkedHashMap<>();
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
    known.put(names[0], kind);
    for (int i = 1; i < names.length; i++) {
      aliases.put(names[i], names[0]);
      known.put(names[i], kind);
    }
    return this;
  }

  public Args parse(String[] argv) {
    for (int i = 0; i < argv.length; i++) {
      String a = argv[i];
      if (!a.startsWith("--") || a.length() == 2) {
        throw new IllegalArgumentException("unexpected argument \"" + a + "\" (flags start with --)");
      }
      int eq = a.indexOf('=');
      String name = eq < 0 ? a.substring(2) : a.substring(2, eq);
      Kind kind = known.get(name);
      if (kind == null) {
        if (eq < 0 && i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
          beamArgs.add(a + "=" + argv[++i]);
        } else {
          beamArgs.add(a);
        }
        continue;
      }
      String canonical = aliases.getOrDefault(name, name);
      String value;
      if (kind == Kind.SWITCH) {
        if (eq >= 0) {
          throw new IllegalArgumentException("--" + name + " takes no value");
        }
        value = "true";
      } else if (eq >= 0) {
        value = a.substring(eq + 1);
      } else if (kind == Kind.MULTI) {
        List<String> parts = new ArrayList<>();
        while (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
          parts.add(argv[++i]);
        }
        if (parts.isEmpty()) {
          throw new IllegalArgumentException("--" + name + " needs at least one value");
        }
        value = String.join(",", parts);
      } else if (i + 1 < argv.length) {
        value = argv[++i];
      } else {
        throw new IllegalArgumentException("--" + name + " needs a value");
      }
      if (values.put(canonical, value) != null) {
        throw new IllegalArgumentException("--" + canonical + " is given twice");
      }
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
    if (v == null) {
      return null;
    }
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
    return java.util.Collections.unmodifiableMap(values);
  }

  /** Flags left for Beam, in {@code --name=value} form. */
  public List<String> beamArgs() {
    return beamArgs;
  }
}
