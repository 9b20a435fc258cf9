"""Text tasks: a character corpus on disk, a char-level GPT, language-model metrics."""
