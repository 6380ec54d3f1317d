from lbscrape.cli import main

main()
