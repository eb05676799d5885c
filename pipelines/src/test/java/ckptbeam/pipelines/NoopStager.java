package ckptbeam.pipelines;

import com.google.api.services.dataflow.model.DataflowPackage;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.beam.runners.dataflow.util.PackageUtil;
import org.apache.beam.runners.dataflow.util.Stager;
import org.apache.beam.sdk.options.PipelineOptions;

/** A Dataflow stager that uploads nothing, so that a job spec can be built offline. */
public class NoopStager implements Stager {
  public static NoopStager fromOptions(PipelineOptions options) {
    return new NoopStager();
  }

  @Override
  public List<DataflowPackage> stageFiles(List<PackageUtil.StagedFile> files) {
    return files.stream().map(f -> pkg(f.getDestination())).collect(Collectors.toList());
  }

  @Override
  public DataflowPackage stageToFile(byte[] bytes, String name) {
    return pkg(name);
  }

  private static DataflowPackage pkg(String name) {
    return new DataflowPackage().setName(name).setLocation("gs://fake-bucket/staging/" + name);
  }
}
