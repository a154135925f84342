from integration.web import create_app

app = create_app()
