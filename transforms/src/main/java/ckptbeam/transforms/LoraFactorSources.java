package ckptbeam.transforms;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The sources of a LoRA export: the LoRA factors of every rank file, under their canonical names. */
final class LoraFactorSources implements InputSources {
  private final List<SourceFile> files = new ArrayList<>();

  LoraFactorSources(List<String> rankPaths, String loadDir) {
    rankPaths.forEach(p -> files.add(SourceFile.of(CheckpointFiles.resolve(loadDir, p))));
  }

  @Override
  public List<SourceFile> files() {
    return files;
  }

  @Override
  public LocatedFile locate(SourceFile file) throws IOException {
    return SourceLocator.loraFactorFile(file);
  }

  @Override
  public Located assemble(List<LocatedFile> located) {
    List<LocatedFile> sorted = new ArrayList<>(located);
    sorted.sort(Comparator.comparing(LocatedFile::path));
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    sorted.forEach(f -> out.putAll(f.tensors()));
    return new Located(out, List.of());
  }
}
