package ckptbeam.transforms.beam;

import ckptbeam.io.SafetensorsHeader;
import ckptbeam.io.TensorLocation;
import java.io.IOException;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;

/**
 * Reads the header of each shard (only its first bytes) and emits, for every tensor the index places in that
 * shard, where its bytes are. A tensor the index names but the shard lacks is an error naming both.
 */
public final class ReadSafetensorsHeaders
    extends PTransform<PCollection<ShardRef>, PCollection<KV<String, TensorLocation>>> {

  public static ReadSafetensorsHeaders create() {
    return new ReadSafetensorsHeaders();
  }

  @Override
  public PCollection<KV<String, TensorLocation>> expand(PCollection<ShardRef> shards) {
    return shards.apply("ReadHeader", ParDo.of(new ReadHeaderFn()));
  }

  static final class ReadHeaderFn extends DoFn<ShardRef, KV<String, TensorLocation>> {
    @ProcessElement
    public void process(@Element ShardRef shard, OutputReceiver<KV<String, TensorLocation>> out) throws IOException {
      SafetensorsHeader header = SafetensorsHeader.read(shard.path);
      for (String name : shard.tensors) {
        TensorLocation loc = header.tensor(name);
        if (loc == null) {
          throw new IOException(shard.path + ": the index places tensor \"" + name + "\" in this shard, but the "
              + "shard does not hold it");
        }
        out.output(KV.of(name, loc));
      }
    }
  }
}
