package ckptbeam.pipelines;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.Sha256;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.torch.McoreTracker;
import ckptbeam.transforms.CheckpointCommit;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.McoreInputConfig;
import ckptbeam.transforms.OutputRecords;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.UUID;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.GroupByKey;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.Reshuffle;
import org.apache.beam.sdk.transforms.WithKeys;
import org.apache.beam.sdk.values.KV;

/**
 * {@code ckptbeam verify}: (a) {@code --load-dir OUT} re-hashes every file a conversion wrote against its manifest;
 * (b) {@code --hf H --mcore S [layout flags]} proves that two checkpoints hold the same model under a layout: every
 * mcore tensor equals, byte for byte, what the spec assigns to it from the HF tensors (replicated copies included),
 * and every HF tensor is used unless the spec drops it. Streams; memory stays bounded. Works on checkpoints written
 * by other tools too.
 */
final class Verify {
  private Verify() {}

  static Args flags() {
    return LayoutFlags.define(new Args()
        .value("load-dir").help("DIR", "Re-hash every file a conversion wrote against its ckptbeam-manifest.json.")
        .value("hf").help("DIR", "With --mcore: the HF checkpoint the mcore one should hold.")
        .value("mcore").help("DIR", "With --hf: the mcore checkpoint (any tool's output), written with the --source-* "
            + "layout."), "source");
  }

  /** Returns the number of problems found (0: verified). */
  static int run(String[] argv, PrintStream out) throws Exception {
    Args a = flags().parse(argv);
    if (a.has("load-dir")) {
      a.noBeamArgs("verify --load-dir");
      return manifest(Cli.absolute(a.get("load-dir")), out);
    }
    if (a.has("hf") && a.has("mcore")) {
      String hf = Cli.absolute(a.get("hf"));
      String mcore = Cli.absolute(a.get("mcore"));
      PipelineOptions options = Cli.pipelineOptions(a, "verify");
      FileSystems.setDefaultPipelineOptions(options); // the args are read before the job: gs:// must be known
      // a DeepSeek-V4 checkpoint says its layout in its rank files' args, as for mcore2hf
      LayoutOptions layout = CheckpointArgs.fill(a, LayoutFlags.parse(a, "source"), mcore,
          McoreInputConfig.of(CheckpointFiles.resolve(hf, "config.json"), true, mcore), "source", "");
      return layout(hf, mcore, layout, options, out);
    }
    throw new IllegalArgumentException("verify needs --load-dir OUT, or --hf H --mcore S with the layout flags");
  }

  static int manifest(String dir, PrintStream out) throws IOException {
    String path = CheckpointFiles.resolve(dir, CheckpointCommit.MANIFEST);
    if (!CheckpointFiles.exists(path)) {
      throw new IOException(path + ": no manifest (not written by ckptbeam, or the conversion did not finish)");
    }
    OutputRecords.Manifest m = OutputRecords.read(CheckpointFiles.readSmallFile(path, 1L << 30),
        OutputRecords.Manifest.class);
    List<String> problems = new ArrayList<>();
    int files = 0;
    for (OutputRecords.FileEntry f : m.files()) {
      String rel = f.path();
      String file = CheckpointFiles.resolve(dir, rel);
      long size = CheckpointFiles.sizeOrMissing(file);
      if (size < 0) {
        problems.add(rel + ": missing");
      } else if (size != f.size()) {
        problems.add(rel + ": " + size + " bytes, the manifest says " + f.size());
      } else if (!Sha256.ofFile(file).equals(f.sha256())) {
        problems.add(rel + ": SHA-256 differs from the manifest");
      }
      files++;
    }
    problems.addAll(unlisted(dir, m));
    return print(out, LayoutProof.Verdict.of(problems, problems.size(), files + " file(s) match "
        + CheckpointCommit.MANIFEST));
  }

  /**
   * Files in the output that look like checkpoint content (rank files, shards, an index or a tracker) and that the
   * manifest does not list: another conversion's leftovers or an added file change what a reader sees (the layout a
   * trainer finds, the tensors an HF loader finds), so they fail verification. The completion marker of the
   * manifest's own command is not listed (it is written after the manifest) and is expected.
   */
  static List<String> unlisted(String dir, OutputRecords.Manifest manifest) throws IOException {
    TreeSet<String> listed = new TreeSet<>();
    manifest.files().forEach(f -> listed.add(f.path()));
    String command = String.valueOf(manifest.command());
    boolean mcoreOutput = command.equals("hf2mcore") || command.equals("mcore2mcore");
    listed.add(mcoreOutput ? McoreTracker.FILE_NAME : SafetensorsIndex.FILE_NAME);
    List<String> problems = new ArrayList<>();
    for (String rel : CheckpointFiles.list(dir)) {
      if (!listed.contains(rel) && CheckpointCommit.looksLikeCheckpointContent(rel)) {
        problems.add(rel + ": not in the manifest (checkpoint content this conversion did not write)");
      }
    }
    return problems;
  }


  /**
   * The layout proof as a pipeline: one element per rank file, spread over the workers, each checked against the HF
   * shards it reads ({@link LayoutProof#checkRankFile}); then one step gathers the verdict and writes it where the
   * command reads it back (the temp location: local by default, {@code --tempLocation} for a remote runner).
   */
  static int layout(String hfDir, String mcoreDir, LayoutOptions layout, PipelineOptions options, PrintStream out)
      throws Exception {
    LayoutProof proof = new LayoutProof(hfDir, mcoreDir, layout);
    List<String> ranks = proof.rankFiles();
    String verdict = CheckpointFiles.resolve(tempDir(options), "ckptbeam-verify-" + UUID.randomUUID() + ".json");
    Cli.fitDirectWorkers(options, ranks.size());
    Pipeline p = Pipeline.create(options);
    p.apply("RankFiles", Create.of(ranks))
        .apply("FanOut", Reshuffle.viaRandomKey())
        .apply("CheckRankFile", ParDo.of(new CheckRankFileFn(proof)))
        .apply("All", WithKeys.of(""))
        .apply("Gather", GroupByKey.create())
        .apply("Verdict", ParDo.of(new VerdictFn(proof, verdict)));
    Cli.run(p);
    if (!CheckpointFiles.exists(verdict)) {
      throw new IOException(verdict + ": the job ended without its verdict there; with a runner whose workers do not "
          + "share this machine's temporary folder, pass --tempLocation (a gs:// or shared folder)");
    }
    LayoutProof.Verdict v;
    try {
      v = LayoutProof.Verdict.fromJson(CheckpointFiles.readSmallFile(verdict, 64L << 20));
    } finally {
      CheckpointFiles.deleteIfExists(List.of(verdict));
    }
    return print(out, v);
  }

  /** Prints a verdict; returns its problem count (the exit status counts them). */
  private static int print(PrintStream out, LayoutProof.Verdict v) {
    v.lines().forEach(out::println);
    return (int) Math.min(Integer.MAX_VALUE, v.problems());
  }

  /** Where the verdict goes: {@code --tempLocation}, or this machine's temporary folder for a local runner. */
  private static String tempDir(PipelineOptions options) {
    String temp = options.getTempLocation();
    return temp != null && !temp.isEmpty() ? temp : System.getProperty("java.io.tmpdir");
  }

  /** Checks one rank file; emits what it showed, as JSON (a string: a deterministic coder for free). */
  static final class CheckRankFileFn extends DoFn<String, String> {
    private final LayoutProof proof;
    private transient TensorAssembler assembler;

    CheckRankFileFn(LayoutProof proof) {
      this.proof = proof;
    }

    @Setup
    public void setUp() {
      assembler = new TensorAssembler();
    }

    @ProcessElement
    public void process(@Element String rank, OutputReceiver<String> out) throws IOException {
      out.output(proof.checkRankFile(rank, assembler).toJson());
    }

    @Teardown
    public void tearDown() throws IOException {
      if (assembler != null) {
        assembler.close();
      }
    }
  }

  /** Every rank file's check in: the verdict's lines, written as a JSON array for the command to print. */
  static final class VerdictFn extends DoFn<KV<String, Iterable<String>>, Void> {
    private final LayoutProof proof;
    private final String path;

    VerdictFn(LayoutProof proof, String path) {
      this.proof = proof;
      this.path = path;
    }

    @ProcessElement
    public void process(@Element KV<String, Iterable<String>> all) throws IOException {
      List<LayoutProof.RankCheck> checks = new ArrayList<>();
      for (String json : all.getValue()) {
        checks.add(LayoutProof.RankCheck.fromJson(json));
      }
      CheckpointFiles.writeSmallFile(path, proof.report(checks).toJson().getBytes(StandardCharsets.UTF_8));
    }
  }
}
