"""The registry's web pages, served by glaas itself."""
