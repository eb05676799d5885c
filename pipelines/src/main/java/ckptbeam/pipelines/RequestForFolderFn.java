package ckptbeam.pipelines;

import ckptbeam.transforms.ConversionRequest;
import org.apache.beam.sdk.transforms.DoFn;

/** The watch's conversion for one claimed checkpoint folder: the command's request, from the folder to its output. */
final class RequestForFolderFn extends DoFn<String, ConversionRequest> {
  private static final long serialVersionUID = 1L;

  private final ConversionRequest template;
  private final CheckpointFolders folders;

  RequestForFolderFn(ConversionRequest template, CheckpointFolders folders) {
    this.template = template;
    this.folders = folders;
  }

  @ProcessElement
  public void process(@Element String folder, OutputReceiver<ConversionRequest> out) {
    out.output(template.withDirs(folder, folders.outputOf(folder)));
  }
}
