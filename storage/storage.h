/* Disk images, WAIO outsourcing, the DBT baseline and the NBD front end. */
#ifndef SMG_STORAGE_H
#define SMG_STORAGE_H

#endif
