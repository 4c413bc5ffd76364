"""Gradio UI of Gen-L Studio: one file per tab, each with create_demo(studio) (Text2Video-Zero style)."""
