"""The subject portal's logic: sign-in (`sign_in`), the overview in plain words (`overview`, `words`), and the
subject's answers, consents and erasure, here or at the member gateway concerned (`actions`)."""
