from trunkline.cli.main import main

main()
