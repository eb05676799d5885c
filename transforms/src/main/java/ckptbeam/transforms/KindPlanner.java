package ckptbeam.transforms;

import java.io.IOException;

/**
 * How one kind of conversion is planned: which small files of the input it reads, which rules it checks, what it
 * writes (plan, commit) and where its sources are ({@link InputSources}). {@code validate}: the full checks of
 * {@link ConversionPlanner#check}; without it, what {@link ConversionPlanner#derive} needs (plan, commit, fingerprint
 * and how to locate one file), from config, tracker or index alone.
 */
interface KindPlanner {
  CheckedConversion plan(ConversionRequest r, boolean validate) throws IOException;
}
