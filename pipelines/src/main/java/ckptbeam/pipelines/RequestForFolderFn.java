package ckptbeam.pipelines;

import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.beam.ConversionResult;
import java.io.IOException;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.TupleTag;

/**
 * The watch's conversion for one claimed checkpoint folder: the command's request, from the folder to its output; or,
 * for a folder that must not be converted (a link out of the watched pattern), a refused result saying why.
 */
final class RequestForFolderFn extends DoFn<String, ConversionRequest> {
  private static final long serialVersionUID = 1L;
  static final TupleTag<ConversionRequest> REQUESTS = new TupleTag<>() {};
  static final TupleTag<ConversionResult> REFUSED = new TupleTag<>() {};

  private final ConversionRequest template;
  private final CheckpointFolders folders;

  RequestForFolderFn(ConversionRequest template, CheckpointFolders folders) {
    this.template = template;
    this.folders = folders;
  }

  @ProcessElement
  public void process(@Element String folder, MultiOutputReceiver out) throws IOException {
    ConversionRequest request = template.withDirs(folder, folders.outputOf(folder));
    String refused = folders.outsideReason(folder);
    if (refused != null) {
      out.get(REFUSED).output(ConversionResult.refused(request, refused));
    } else {
      out.get(REQUESTS).output(request);
    }
  }
}
