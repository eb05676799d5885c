package ckptbeam.pipelines;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Every "docs/mapping.md §x" or "docs/formats.md §y" in the code, scripts and README names a section those documents
 * have: the repository's docs are the contract the code cites, so a citation must not point into a gap.
 */
class DocsReferencesTest {
  /** A citation: the document, then section numbers such as §3.7.2, 5.4-5.5, §7.3–§7.6, "section 4" or "Appendix A". */
  private static final Pattern CITATION = Pattern.compile(
      "docs/(mapping|formats)\\.md((?:,? ?(?:and )?(?:§|section |Appendix )?[0-9A-Z][0-9.]*(?:[-–]§?[0-9.]+)?)*)");
  private static final Pattern NUMBER = Pattern.compile("(Appendix [A-Z])|[0-9]+(?:\\.[0-9]+)*");
  private static final Pattern HEADING = Pattern.compile("^#+ (Appendix [A-Z]|[0-9][0-9.]*(?:[–-][0-9.]+)?)[. ]");

  @Test
  void everyCitedSectionExists() throws IOException {
    Path repo = repo();
    Set<String> mapping = sections(repo.resolve("docs/mapping.md"));
    Set<String> formats = sections(repo.resolve("docs/formats.md"));
    List<String> missing = new ArrayList<>();
    int citations = 0;
    for (Path f : sourceFiles(repo)) {
      Matcher m = CITATION.matcher(Files.readString(f));
      while (m.find()) {
        Set<String> known = m.group(1).equals("mapping") ? mapping : formats;
        Matcher n = NUMBER.matcher(m.group(2));
        while (n.find()) {
          citations++;
          String section = n.group().replaceAll("\\.$", "");
          if (!known.contains(section)) {
            missing.add(repo.relativize(f) + ": docs/" + m.group(1) + ".md " + section);
          }
        }
      }
    }
    assertEquals(List.of(), missing, "citations of sections the docs do not have");
    assertTrue(citations > 50, "found only " + citations + " citations: is the pattern still right?");
  }

  /** The section numbers of a document's headings; "2.1–2.2" counts as both. */
  private static Set<String> sections(Path doc) throws IOException {
    Set<String> found = new TreeSet<>();
    for (String line : Files.readAllLines(doc)) {
      Matcher h = HEADING.matcher(line);
      if (h.find()) {
        for (String part : h.group(1).split("[–-]")) {
          found.add(part.replaceAll("\\.$", ""));
        }
      }
    }
    return found;
  }

  private static List<Path> sourceFiles(Path repo) throws IOException {
    Set<String> kinds = new HashSet<>(List.of(".java", ".py", ".sh"));
    try (Stream<Path> all = Files.walk(repo)) {
      List<Path> files = all.filter(Files::isRegularFile)
          .filter(p -> !repo.relativize(p).toString().matches("(.*/)?(target|node_modules|\\.git)/.*"))
          .filter(p -> kinds.stream().anyMatch(k -> p.toString().endsWith(k)))
          .collect(Collectors.toList());
      files.add(repo.resolve("README.md"));
      return files;
    }
  }

  private static Path repo() {
    Path p = Path.of("").toAbsolutePath();
    while (!Files.exists(p.resolve("README.md")) || !Files.exists(p.resolve("pipelines"))) {
      p = p.getParent();
    }
    return p;
  }
}
