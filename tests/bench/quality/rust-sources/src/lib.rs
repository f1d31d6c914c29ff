// Empty: the crates are what the quality bench reads, not a build.
