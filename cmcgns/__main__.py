from cmcgns.cli.app import main

main()
