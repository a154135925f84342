from integration import create_app

app = create_app()
