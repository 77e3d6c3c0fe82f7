from services.cli import main

if __name__ == "__main__":  # not when a spawned pool process imports it as __mp_main__
    main()
