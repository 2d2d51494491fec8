pub(crate) fn write(_p: &crate::HeapProfile, mut w: impl std::io::Write) -> std::io::Result<()> { w.write_all(b"heap profile: ") }
