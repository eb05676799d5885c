/**
 * Where bytes live: local and gs:// files through Beam FileSystems, byte-range readers, output staged under a
 * temporary name until complete, and write channels that count, hash, compare or write behind.
 */
package ckptbeam.io.storage;
