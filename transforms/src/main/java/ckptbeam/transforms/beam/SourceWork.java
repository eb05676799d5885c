package ckptbeam.transforms.beam;

import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LocatedFile;
import ckptbeam.transforms.SourceFile;
import java.util.List;

/**
 * One input file of a conversion to read (a shard's header, a rank file's pickle), as the plan step hands it out to
 * be spread over workers; after reading, the same element carries what the file holds ({@link #located}) or why it
 * could not be read ({@link #error}) to the step that assembles the conversion's sources. Carries the request (a
 * worker derives the plan from it), the fingerprint planned, how many files the conversion reads, and the plan
 * step's notes and start time for the commit. Encoded by {@link ConversionCoders.SourceWorkCoder}.
 */
final class SourceWork {
  /** The conversion's key: its save dir. */
  final String conversion;
  final ConversionRequest request;
  final String fingerprint;
  /** How many input files the conversion reads: the assembler waits for as many. */
  final int files;
  final SourceFile file;
  final List<String> notes;
  final long startMillis;
  /** What the file holds, once read; null before, or when reading failed. */
  final LocatedFile located;
  /** Why reading failed, or null. */
  final String error;

  SourceWork(String conversion, ConversionRequest request, String fingerprint, int files, SourceFile file,
      List<String> notes, long startMillis, LocatedFile located, String error) {
    this.conversion = conversion;
    this.request = request;
    this.fingerprint = fingerprint;
    this.files = files;
    this.file = file;
    this.notes = List.copyOf(notes);
    this.startMillis = startMillis;
    this.located = located;
    this.error = error;
  }

  /** This file, read. */
  SourceWork located(LocatedFile what) {
    return new SourceWork(conversion, request, fingerprint, files, file, notes, startMillis, what, null);
  }

  /** This file, which could not be read. */
  SourceWork failed(String message) {
    return new SourceWork(conversion, request, fingerprint, files, file, notes, startMillis, null, message);
  }

  @Override
  public String toString() {
    return file.path() + " (of " + request + ")";
  }
}
