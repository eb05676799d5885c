package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.McoreInputConfig;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.beam.ConversionResult;
import java.io.IOException;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.TupleTag;

/**
 * The watch's conversion for one claimed checkpoint folder: the command's request, from the folder to its output,
 * completed and checked as the batch commands do (a DeepSeek-V4 checkpoint's layout from its args, MindSpeed's
 * model-type flags against its config.json); or, for a folder that must not be converted (a link out of the watched
 * pattern, flags that disagree with this checkpoint), a refused result saying why.
 */
final class RequestForFolderFn extends DoFn<String, ConversionRequest> {
  private static final long serialVersionUID = 1L;
  static final TupleTag<ConversionRequest> REQUESTS = new TupleTag<>() {};
  static final TupleTag<ConversionResult> REFUSED = new TupleTag<>() {};

  private final ConversionRequest template;
  private final CheckpointFolders folders;
  private final ConversionDirection direction;
  private final String[] conversionArgs;

  RequestForFolderFn(ConversionRequest template, CheckpointFolders folders, ConversionDirection direction,
      String[] conversionArgs) {
    this.template = template;
    this.folders = folders;
    this.direction = direction;
    this.conversionArgs = conversionArgs.clone();
  }

  @ProcessElement
  public void process(@Element String folder, MultiOutputReceiver out) throws IOException {
    ConversionRequest request = template.withDirs(folder, folders.outputOf(folder));
    String refused = folders.outsideReason(folder);
    if (refused == null) {
      try {
        request = forCheckpoint(request);
      } catch (IllegalArgumentException | IOException e) {
        // reported in the checkpoint's status, as a failed conversion is
        refused = e.getMessage() != null ? e.getMessage() : e.toString();
      }
    }
    if (refused != null) {
      out.get(REFUSED).output(ConversionResult.refused(request, refused));
    } else {
      out.get(REQUESTS).output(request);
    }
  }

  /** The request completed from, and checked against, the checkpoint it converts. */
  private ConversionRequest forCheckpoint(ConversionRequest r) throws IOException {
    Args a = direction.conversionFlags().parse(conversionArgs);
    if (r.kind() == ConversionRequest.Kind.HF2MCORE) {
      String config = CheckpointFiles.resolve(r.loadDir(), "config.json");
      if (CheckpointFiles.exists(config)) {
        ModelTypeFlags.check(r, ModelConfig.read(config));
      }
      return r; // else the conversion names what is missing
    }
    McoreInputConfig config;
    try {
      config = McoreInputConfig.of(r);
    } catch (IOException e) {
      return r; // the conversion names what is missing
    }
    r = CheckpointArgs.complete(a, r);
    ModelTypeFlags.check(r, config.parse());
    return r;
  }
}
