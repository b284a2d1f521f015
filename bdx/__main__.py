from bdx.console import main

main()
