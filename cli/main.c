#include "cli/cli.h"

int main(int argc, char **argv)
{
	return smg_cli_main(argc, argv);
}
