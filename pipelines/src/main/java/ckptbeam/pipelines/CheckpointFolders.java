package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The checkpoint folders a watch pattern ({@code gs://b/incoming/*}{@code /}, {@code /data/ckpts/run-*}) stands for:
 * listing them through a marker file, mapping an object that changed to the folder it belongs to, and naming each
 * folder's output under the save root.
 */
final class CheckpointFolders implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final String pattern;
  private final String saveRoot;
  private transient Pattern regex;

  CheckpointFolders(String pattern, String saveRoot) {
    String p = pattern.endsWith("/") ? pattern.substring(0, pattern.length() - 1) : pattern;
    if (p.isEmpty()) {
      throw new IllegalArgumentException("--input-pattern must name folders, e.g. 'gs://bucket/incoming/*/'");
    }
    this.pattern = p;
    this.saveRoot = saveRoot.endsWith("/") && saveRoot.length() > 1 ? saveRoot.substring(0, saveRoot.length() - 1)
        : saveRoot;
  }

  /** The folders matching the pattern that hold {@code marker}, sorted. */
  List<String> withMarker(String marker) throws IOException {
    TreeSet<String> folders = new TreeSet<>();
    for (String file : CheckpointFiles.match(CheckpointFiles.resolve(pattern, marker))) {
      String folder = file.substring(0, file.length() - marker.length() - 1);
      if (matches(folder)) {
        folders.add(folder);
      }
    }
    return new ArrayList<>(folders);
  }

  /**
   * Why a folder the pattern matched must not be converted, or null when it may: a local folder reached through a
   * symbolic link whose target lies outside the watched pattern. Whoever may drop a folder into the watched place
   * could otherwise have the service read any folder it can read and publish it under the save root. (Object stores
   * have no links.)
   */
  String outsideReason(String folder) throws IOException {
    if (!CheckpointFiles.isLocal(folder)) {
      return null;
    }
    Path path = CheckpointFiles.localPath(folder).toAbsolutePath().normalize();
    Path real = path.toRealPath();
    Path fixed = CheckpointFiles.localPath(fixedPrefix()).toAbsolutePath().normalize();
    if (fixed.toString().isEmpty() || !java.nio.file.Files.exists(fixed)) {
      fixed = path.getRoot();
    }
    Path realFixed = fixed.toRealPath();
    if (real.startsWith(realFixed) && matches(fixed.resolve(realFixed.relativize(real)).toString())) {
      return null;
    }
    return "the folder " + folder + " is a symbolic link to " + real + ", which is outside the watched pattern "
        + pattern + "; not converted";
  }

  /** The pattern's leading path segments without wildcards (the folder the watch looks into). */
  private String fixedPrefix() {
    int wild = pattern.length();
    for (char c : new char[] {'*', '?', '[', '{'}) {
      int i = pattern.indexOf(c);
      if (i >= 0) {
        wild = Math.min(wild, i);
      }
    }
    int slash = pattern.lastIndexOf('/', wild == pattern.length() ? wild - 1 : wild);
    return slash <= 0 ? "/" : pattern.substring(0, slash);
  }

  /** The checkpoint folder an object path lies in, or null when it lies in none the pattern names. */
  String folderOf(String path) {
    for (int slash = path.indexOf('/', path.indexOf("://") + 3); slash > 0; slash = path.indexOf('/', slash + 1)) {
      String prefix = path.substring(0, slash);
      if (matches(prefix)) {
        return prefix;
      }
    }
    return null;
  }

  /**
   * The object a Cloud Storage notification (the JSON object resource of an OBJECT_FINALIZE message) is about, as a
   * gs:// path; null for a payload without bucket and name.
   */
  static String objectOfNotification(String payload) {
    try {
      JsonNode n = JSON.readTree(payload);
      if (n == null || !n.hasNonNull("bucket") || !n.hasNonNull("name")) {
        return null;
      }
      return "gs://" + n.get("bucket").asText() + "/" + n.get("name").asText();
    } catch (IOException e) {
      return null;
    }
  }

  /** Where a folder's conversion goes: the save root joined with the folder's own name. */
  String outputOf(String folder) {
    return CheckpointFiles.resolve(saveRoot, name(folder));
  }

  /** The per-checkpoint status record, next to the output folder. */
  String statusOf(String folder) {
    return CheckpointFiles.resolve(saveRoot, name(folder) + ".ckptbeam-status.json");
  }

  static String name(String folder) {
    String f = folder.endsWith("/") ? folder.substring(0, folder.length() - 1) : folder;
    return f.substring(f.lastIndexOf('/') + 1);
  }

  boolean matches(String folder) {
    if (regex == null) {
      regex = globToRegex(pattern);
    }
    return regex.matcher(folder).matches();
  }

  /** Beam's glob syntax: {@code *} and {@code ?} within one path segment, {@code **} across segments. */
  static Pattern globToRegex(String glob) {
    StringBuilder r = new StringBuilder();
    for (int i = 0; i < glob.length(); i++) {
      char c = glob.charAt(i);
      if (c == '*' && i + 1 < glob.length() && glob.charAt(i + 1) == '*') {
        r.append(".*");
        i++;
      } else if (c == '*') {
        r.append("[^/]*");
      } else if (c == '?') {
        r.append("[^/]");
      } else {
        r.append(Pattern.quote(String.valueOf(c)));
      }
    }
    return Pattern.compile(r.toString());
  }
}
