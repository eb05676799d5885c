package ckptbeam.io.safetensors;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;

/** JSON laid out as Python's {@code json.dump(obj, f, indent=N)} does: {@code "key": value}, N-space indents. */
public final class PythonJson {
  private static final ObjectMapper JSON = new ObjectMapper();

  private PythonJson() {}

  /** The node, indented by {@code indent} spaces, with a trailing newline. */
  public static byte[] write(JsonNode node, int indent) {
    DefaultPrettyPrinter base = new DefaultPrettyPrinter()
        .withObjectIndenter(new DefaultIndenter(" ".repeat(indent), "\n"))
        .withArrayIndenter(new DefaultIndenter(" ".repeat(indent), "\n"));
    try {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      try (JsonGenerator g = JSON.getFactory().createGenerator(out)) {
        g.setPrettyPrinter(new Printer(base));
        JSON.writeTree(g, node);
      }
      out.write('\n');
      return out.toByteArray();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Jackson's pretty printer writes {@code "a" : 1} and {@code [ ]}; Python writes {@code "a": 1} and {@code []}. */
  private static final class Printer extends DefaultPrettyPrinter {
    private static final long serialVersionUID = 1L;

    Printer(DefaultPrettyPrinter base) {
      super(base);
    }

    @Override
    public DefaultPrettyPrinter createInstance() {
      return new Printer(this);
    }

    @Override
    public void writeObjectFieldValueSeparator(JsonGenerator g) throws IOException {
      g.writeRaw(": ");
    }

    @Override
    public void writeEndArray(JsonGenerator g, int nrOfValues) throws IOException {
      if (nrOfValues == 0) {
        g.writeRaw(']');
        return;
      }
      super.writeEndArray(g, nrOfValues);
    }

    @Override
    public void writeEndObject(JsonGenerator g, int nrOfEntries) throws IOException {
      if (nrOfEntries == 0) {
        g.writeRaw('}');
        return;
      }
      super.writeEndObject(g, nrOfEntries);
    }
  }
}
