from hyperspot.cli.main import main

main()
