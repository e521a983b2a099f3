// Package sqlite implements jobcast's embedded-mode stores on a SQLite file
// (pure-Go driver modernc.org/sqlite, so no C toolchain is needed). It uses
// WAL mode with synchronous=NORMAL: a killed process loses nothing that was
// committed; a power loss may lose the last transactions. The writer never
// checkpoints the WAL itself: a background connection does, every
// CheckpointInterval, so that no write waits for a checkpoint's fsyncs.
package sqlite
