from zaudio.cli.main import main

main()
