from bdx.cli import main

main()
