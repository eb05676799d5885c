package ckptbeam.transforms;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.tensor.TensorLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A request checked against its input's small files: what it writes (plan, commit), its identity (fingerprint), and
 * where its sources are to be found ({@link #sources}: the files to read, each on its own, then assembled). Made by
 * {@link ConversionPlanner#check} (validated, on the driver or in the plan step) or {@link ConversionPlanner#derive}
 * (again on a worker, from the small files alone).
 */
public final class CheckedConversion {
  public final ConversionRequest request;
  public final ConversionPlan plan;
  public final CheckpointCommit commit;
  /** Identifies the conversion and its input; a resumed run keeps only files recorded with the same one. */
  public final String fingerprint;
  /** Things the user should know that are not errors (input tensors the layout leaves out). */
  public final List<String> notes;
  /** About how many bytes the data files take (bf16), for the disk-space preflight; -1 when not estimated. */
  public final long plannedBytes;
  /** Where the sources are: the input files to read, what each holds, every source by name. */
  public final InputSources sources;

  CheckedConversion(ConversionRequest request, ConversionPlan plan, CheckpointCommit commit, String fingerprint,
      List<String> notes, long plannedBytes, InputSources sources) {
    this.request = request;
    this.plan = plan;
    this.commit = commit;
    this.fingerprint = fingerprint;
    this.notes = List.copyOf(notes);
    this.plannedBytes = plannedBytes;
    this.sources = sources;
  }

  /**
   * Whether the save dir already holds this very conversion, complete: its marker, and a manifest with the same
   * fingerprint. Only asked for with {@link ConversionRequest.ExistingOutput#RESUME}.
   */
  public boolean alreadyConverted() throws IOException {
    return request.existingOutput() == ConversionRequest.ExistingOutput.RESUME
        && CheckpointFiles.exists(CheckpointFiles.resolve(request.saveDir(), commit.markerName()))
        && fingerprint.equals(recordedFingerprint(CheckpointCommit.MANIFEST));
  }

  /**
   * The fingerprint a manifest or progress record in the save dir carries ({@code relative} to it); empty when the
   * file is missing or torn (it will be written again).
   */
  private String recordedFingerprint(String relative) throws IOException {
    String path = CheckpointFiles.resolve(request.saveDir(), relative);
    if (!CheckpointFiles.exists(path)) {
      return "";
    }
    try {
      String recorded = OutputRecords.read(CheckpointFiles.readSmallFile(path, 256L << 20),
          OutputRecords.Fingerprinted.class).fingerprint();
      return recorded == null ? "" : recorded;
    } catch (JsonProcessingException e) {
      return "";
    }
  }

  /**
   * Read-only save-dir rules, the same for a local folder and a gs:// prefix: it must not be a file; one that holds
   * anything is refused with {@link ConversionRequest.ExistingOutput#REFUSE}; with
   * {@link ConversionRequest.ExistingOutput#RESUME} it must hold this conversion or nothing of another (its manifest
   * and progress records carry the fingerprint of the conversion that wrote them); a local one must have room for
   * the data files (less what a resumed run keeps; an estimate, there to fail before hours of writing).
   */
  public void checkSaveDir() throws IOException {
    String saveDir = request.saveDir();
    if (CheckpointFiles.isLocal(saveDir)) {
      Path dir = CheckpointFiles.localPath(saveDir);
      if (Files.exists(dir) && !Files.isDirectory(dir)) {
        throw new IOException("--save-dir " + saveDir + " exists and is not a directory");
      }
    }
    List<String> present = CheckpointFiles.list(saveDir);
    if (!present.isEmpty() && request.existingOutput() == ConversionRequest.ExistingOutput.REFUSE) {
      throw new IOException("--save-dir " + saveDir + " is not empty"
          + (present.contains(commit.markerName()) ? " (it holds a checkpoint)" : " (it holds " + present.size()
          + " file(s), e.g. " + present.get(0) + ")") + "; pass --overwrite to replace its content");
    }
    if (request.existingOutput() == ConversionRequest.ExistingOutput.RESUME) {
      String other = otherConversion(present);
      if (other != null) {
        throw new IOException("--save-dir " + saveDir + " holds " + other + "; --resume continues only the same "
            + "conversion (same input, layout and LoRA settings): pass --overwrite to replace it");
      }
    }
    if (plannedBytes > 0 && CheckpointFiles.isLocal(saveDir)
        && request.existingOutput() != ConversionRequest.ExistingOutput.RESUME) {
      Path dir = CheckpointFiles.localPath(saveDir);
      while (dir != null && !Files.exists(dir)) {
        dir = dir.getParent();
      }
      long free = dir == null ? Long.MAX_VALUE : Files.getFileStore(dir).getUsableSpace();
      if (free < plannedBytes) {
        throw new IOException("--save-dir " + saveDir + ": the conversion writes about " + plannedBytes / (1 << 20)
            + " MiB but only " + free / (1 << 20) + " MiB are free there");
      }
    }
  }

  /**
   * What of another conversion the save dir holds, or null: a manifest or a progress record with another
   * fingerprint (a torn one is ignored: it will be written again).
   */
  private String otherConversion(List<String> present) throws IOException {
    String record = present.contains(CheckpointCommit.MANIFEST) ? CheckpointCommit.MANIFEST
        : present.stream().filter(f -> f.startsWith(ProgressRecord.DIR + "/")).findFirst().orElse(null);
    String theirs = record == null ? "" : recordedFingerprint(record);
    if (theirs.isEmpty() || theirs.equals(fingerprint)) {
      return null;
    }
    return (record.equals(CheckpointCommit.MANIFEST) ? "the output" : "part of the output") + " of another "
        + "conversion (" + record + " has fingerprint " + theirs.substring(0, Math.min(12, theirs.length()))
        + "…, this one is " + fingerprint.substring(0, 12) + "…)";
  }

  /**
   * Makes a save dir that passed {@link #checkSaveDir} (the plan step checks it, before any input file is read) ready
   * to be written: the completion marker and the manifest are removed, so an old output can never pass for the new
   * one while it is being replaced. The rules are not checked again here: listing a large gs:// output and reading
   * its records a second time would find what the plan step found.
   */
  public void prepareSaveDir() throws IOException {
    String saveDir = request.saveDir();
    CheckpointFiles.deleteIfExists(List.of(CheckpointFiles.resolve(saveDir, commit.markerName()),
        CheckpointFiles.resolve(saveDir, CheckpointCommit.MANIFEST)));
  }

  /**
   * Every target with the located sources it reads, checked against the shapes the plan expects; the sources of one
   * tensor must share a dtype. Refused here, before any file is written.
   */
  public Map<String, Map<String, TensorLocation>> targets(InputSources.Located located) throws IOException {
    Map<String, Map<String, TensorLocation>> out = new LinkedHashMap<>();
    for (String target : plan.targets()) {
      Map<String, TensorLocation> sources = SourceLocator.forTarget(plan, target, located.byName());
      for (AssembledTensor t : plan.tensorsOf(target)) {
        TensorAssembler.dtypeOf(t, sources);
      }
      out.put(target, sources);
    }
    return out;
  }
}
