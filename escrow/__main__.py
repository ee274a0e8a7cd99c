from escrow.cli import app

app()
