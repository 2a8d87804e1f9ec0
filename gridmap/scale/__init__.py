"""City scale: synthetic districts, the partitioned PostGIS store loaded with COPY, and indicators in SQL."""
