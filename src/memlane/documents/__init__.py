"""Document memory: files, folders and archives remembered as document and chunk memories,
kept in sync by content hash (`Memory.add_documents`)."""
