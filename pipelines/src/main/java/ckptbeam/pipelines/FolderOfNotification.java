package ckptbeam.pipelines;

import org.apache.beam.sdk.transforms.DoFn;

/** A notification's object → the checkpoint folder it belongs to (dropped when it belongs to none). */
final class FolderOfNotification extends DoFn<String, String> {
  private static final long serialVersionUID = 1L;
  private final CheckpointFolders folders;

  FolderOfNotification(CheckpointFolders folders) {
    this.folders = folders;
  }

  @ProcessElement
  public void process(@Element String payload, OutputReceiver<String> out) {
    String object = CheckpointFolders.objectOfNotification(payload);
    String folder = object == null ? null : folders.folderOf(object);
    if (folder != null) {
      out.output(folder);
    }
  }
}
